package webclient

import (
	"time"

	"github.com/siprtc/siprtc/gateway/rtc"
)

// MinVideoBitrate is the synthetic encoder's floor under bandwidth estimation: a real encoder
// cannot make useful video below a few tens of kbit/s, whatever the estimate says.
const MinVideoBitrate = 30_000

// defaultBWEInterval is the time between two BWESamples.
const defaultBWEInterval = 100 * time.Millisecond

// BWESample is the bandwidth estimator's state at one moment of a call (WithBWE), every 100 ms.
type BWESample struct {
	At time.Time
	// Target is the estimator's target bitrate (bit/s): the lower of LossTarget and DelayTarget
	// once feedback has come.
	Target, LossTarget, DelayTarget int
	// SendingRate is what the client sent since the previous sample, bit/s: RTP header and
	// payload of every packet as it left the pacer (audio, video, retransmissions, FEC).
	SendingRate int
	// VideoBitrate is the video encoder's target at the time (0 without video).
	VideoBitrate int
	// LossRate is gcc's averaged loss fraction of the feedback (0..1).
	LossRate float64
	// DelayState is the delay-based rate controller's state ("increase", "decrease", "hold"),
	// Usage the overuse detector's signal ("overuse", "underuse", "normal").
	DelayState, Usage string
	// DelayEstimate and DelayThreshold are the filtered one-way delay variation and the
	// adaptive threshold the overuse detector compares it with.
	DelayEstimate, DelayThreshold time.Duration
}

// videoBitrateFor is the encoder's bitrate under a target: what the audio leaves of it (less the
// FlexFEC packets' share, which bypass the estimator), between MinVideoBitrate and the
// configured video bitrate (the encoder's maximum, WithVideo).
func (m *media) videoBitrateFor(target int) int {
	rate := target - int(m.audioRate.Load())
	if s := m.cfg.mediaShare; s > 0 {
		rate = int(float64(rate) * s)
	}
	return max(min(rate, m.cfg.videoBitrate), MinVideoBitrate)
}

// sampleBWE records a BWESample every interval until the media stops.
func (m *media) sampleBWE() {
	defer m.wg.Done()
	interval := m.cfg.bweInterval
	if interval <= 0 {
		interval = defaultBWEInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	last, lastBytes := time.Now(), m.tap.sentBytes.Load()
	for {
		select {
		case <-m.stopCh:
			return
		case now := <-t.C:
			bytes := m.tap.sentBytes.Load()
			elapsed := now.Sub(last).Seconds()
			st := m.bwe.Stats()
			s := BWESample{
				At: now, Target: st.TargetBitrate, LossTarget: st.LossTargetBitrate, DelayTarget: st.DelayTargetBitrate,
				LossRate: st.AverageLoss, DelayState: st.State, Usage: st.Usage,
				DelayEstimate: st.DelayEstimate, DelayThreshold: st.DelayThreshold,
			}
			if elapsed > 0 {
				s.SendingRate = int(float64(bytes-lastBytes) * 8 / elapsed)
			}
			if m.videoTrack != nil {
				s.VideoBitrate = int(m.videoRate.Load())
			}
			last, lastBytes = now, bytes
			m.mu.Lock()
			if len(m.samples) < m.cfg.logLimit {
				m.samples = append(m.samples, s)
			}
			m.mu.Unlock()
		}
	}
}

func (m *media) bweSamples() []BWESample {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]BWESample(nil), m.samples...)
}

// BWESamples returns the bandwidth estimator's time series of the call so far (WithBWE; nil
// without it), one sample every 100 ms from the moment the call connected.
func (c *Call) BWESamples() []BWESample {
	if m := c.media(); m != nil {
		return m.bweSamples()
	}
	return nil
}

// BWE is the call's bandwidth estimator (pion's gcc through gateway/rtc); nil without WithBWE or
// before the PeerConnection exists.
func (c *Call) BWE() *rtc.BWE {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pc == nil {
		return nil
	}
	return c.pc.BWE
}
