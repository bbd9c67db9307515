package rtc

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/cc"
	"github.com/pion/interceptor/pkg/gcc"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/interceptor/pkg/twcc"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
)

var errBWE = errors.New("rtc: bad bandwidth estimation settings")

// BWEPacer names the pacer the estimator sends through.
type BWEPacer string

// The pacers pion's gcc offers.
const (
	// PacerLeakyBucket is gcc's LeakyBucketPacer: every 5 ms it sends what 1.5 times the target
	// bitrate allows since its last send, at least one packet. pion fixes the interval and the
	// factor (they are not options in interceptor v0.1.51). The default.
	PacerLeakyBucket BWEPacer = "leaky-bucket"
	// PacerNone is gcc's NoOpPacer: packets leave as they are written.
	PacerNone BWEPacer = "none"
)

// Defaults of BWEConfig's zero fields.
const (
	// DefaultBWEInitialBitrate is libwebrtc's start bitrate. pion's own default (10 kbit/s) is
	// below any video encoder's floor.
	DefaultBWEInitialBitrate = 300_000
	// DefaultBWEMinBitrate and DefaultBWEMaxBitrate are pion gcc's bounds.
	DefaultBWEMinBitrate = 5_000
	DefaultBWEMaxBitrate = 50_000_000
)

// BWEConfig turns on send-side bandwidth estimation: pion's Google Congestion Control
// (interceptor/pkg/gcc behind pkg/cc) on what the peer sends, fed by the transport-wide
// congestion control feedback (TWCC) the other side returns for it. Setting it implies
// SendTWCC. The media and the retransmissions (RTX included) the PeerConnection sends go
// through the estimator's pacer and are accounted for; FlexFEC packets do not: the encoder sits
// inside the estimator (its packets must cover the media packets as they leave, transport-wide
// sequence numbers included), so they bypass the pacer and carry no sequence number, and a
// sender must budget for them (the lab's client lowers its video bitrate by the FEC overhead).
// Each PeerConnection gets its own estimator (Peer.BWE, or WithBWEHandler).
//
// pion's gcc (v0.1.51) takes only these settings: the delay-based controller (arrival-time
// filter, overuse detector with its adaptive threshold, AIMD rate controller) and the
// loss-based controller (below 2% loss +5% every 200 ms, above 10% -loss/2, bounded to
// 100 kbit/s-100 Mbit/s) have their constants built in; GetStats reports their state.
type BWEConfig struct {
	// InitialBitrate is the target before any feedback, bit/s; 0 means
	// DefaultBWEInitialBitrate.
	InitialBitrate int
	// MinBitrate and MaxBitrate bound the delay-based target, bit/s; 0 means pion's 5 kbit/s
	// and 50 Mbit/s.
	MinBitrate, MaxBitrate int
	// Pacer is PacerLeakyBucket ("" too) or PacerNone.
	Pacer BWEPacer
}

// withDefaults fills the zero fields.
func (c BWEConfig) withDefaults() BWEConfig {
	if c.MinBitrate == 0 {
		c.MinBitrate = DefaultBWEMinBitrate
	}
	if c.MaxBitrate == 0 {
		c.MaxBitrate = DefaultBWEMaxBitrate
	}
	if c.InitialBitrate == 0 {
		c.InitialBitrate = min(max(DefaultBWEInitialBitrate, c.MinBitrate), c.MaxBitrate)
	}
	if c.Pacer == "" {
		c.Pacer = PacerLeakyBucket
	}
	return c
}

func (c BWEConfig) validate() error {
	if c.InitialBitrate < 0 || c.MinBitrate < 0 || c.MaxBitrate < 0 {
		return fmt.Errorf("%w: negative bitrate in %+v", errBWE, c)
	}
	d := c.withDefaults()
	if d.MinBitrate > d.MaxBitrate {
		return fmt.Errorf("%w: min %d above max %d", errBWE, d.MinBitrate, d.MaxBitrate)
	}
	if d.InitialBitrate < d.MinBitrate || d.InitialBitrate > d.MaxBitrate {
		return fmt.Errorf("%w: initial %d outside %d-%d", errBWE, d.InitialBitrate, d.MinBitrate, d.MaxBitrate)
	}
	switch d.Pacer {
	case PacerLeakyBucket, PacerNone:
	default:
		return fmt.Errorf("%w: pacer %q: want %q or %q", errBWE, c.Pacer, PacerLeakyBucket, PacerNone)
	}
	return nil
}

// WithBWEHandler hands f the estimator of each PeerConnection the API builds (when
// Config.BWE is set), during NewPeerConnection. NewPeer uses it to fill Peer.BWE.
func WithBWEHandler(f func(*BWE)) Option {
	return func(o *apiOptions) { o.bwe = f }
}

// WithInterceptor registers f innermost in the API's interceptor chain (next to the repair
// counters): its interceptors see RTP as it leaves (after the pacer, RED framing and the
// FlexFEC encoder: retransmissions, RED and FEC packets included; before SRTP) and as it
// arrives (after SRTP; RED not decoded yet, RTX packets before pion unwraps them; FlexFEC
// packets never reach an interceptor, see fec.go), and every RTCP packet both ways (NACKs after
// the RTX filter). The lab's client observes repair with it.
func WithInterceptor(f interceptor.Factory) Option {
	return func(o *apiOptions) { o.extra = append(o.extra, f) }
}

// nackGeneratorOptions are the generator's tuning from c.
func (c Config) nackGeneratorOptions() []nack.GeneratorOption {
	var out []nack.GeneratorOption
	if c.NACKInterval > 0 {
		out = append(out, nack.GeneratorInterval(c.NACKInterval))
	}
	if c.NACKMaxRetries > 0 {
		out = append(out, nack.GeneratorMaxNacksPerPacket(c.NACKMaxRetries))
	}
	if c.NACKSkipLastN > 0 {
		out = append(out, nack.GeneratorSkipLastN(c.NACKSkipLastN))
	}
	return out
}

// addBWE registers, innermost first, the congestion controller with its pacer, RED and FlexFEC
// (addRepair, when configured), and the transport-wide sequence numbers. Packets carry their
// number when the estimator records them as sent (after the pacer). RED frames and FEC packets
// are built from the packets as they leave, numbers included (FlexFEC needs it), and go
// through the pacer: RED packets are accounted at their size, FEC packets (they carry no
// number: gcc would refuse them) are paced but not accounted. The NACK responder, registered
// later (outer), gets fresh numbers for its retransmissions and the target bitrate to limit
// them with.
func addBWE(ir *interceptor.Registry, m *webrtc.MediaEngine, cfg Config, counters *RepairCounters, handler func(*BWE)) error {
	if err := cfg.BWE.validate(); err != nil {
		return err
	}
	bc := cfg.BWE.withDefaults()
	f, err := cc.NewInterceptor(func() (cc.BandwidthEstimator, error) {
		opts := []gcc.Option{
			gcc.SendSideBWEInitialBitrate(bc.InitialBitrate),
			gcc.SendSideBWEMinBitrate(bc.MinBitrate),
			gcc.SendSideBWEMaxBitrate(bc.MaxBitrate),
		}
		if cfg.LoggerFactory != nil {
			opts = append(opts, gcc.WithLoggerFactory(cfg.LoggerFactory))
		}
		// The pacer is made here (gcc would make the same) so that FEC packets can be given
		// to it directly: see AddStream.
		var pacer gcc.Pacer = gcc.NewNoOpPacer()
		if bc.Pacer == PacerLeakyBucket {
			pacer = gcc.NewLeakyBucketPacer(bc.InitialBitrate)
		}
		est, err := gcc.NewSendSideBWE(append(opts, gcc.SendSideBWEPacer(pacer))...)
		if err != nil {
			_ = pacer.Close()
			return nil, err
		}
		b := &BWE{est: est, pacer: pacer, cfg: bc}
		est.OnTargetBitrateChange(b.targetChanged)
		return b, nil
	})
	if err != nil {
		return fmt.Errorf("rtc: congestion control: %w", err)
	}
	f.OnNewPeerConnection(func(id string, e cc.BandwidthEstimator) {
		b, ok := e.(*BWE)
		if !ok {
			return
		}
		b.id = id
		if handler != nil {
			handler(b)
		}
	})
	ir.Add(f)
	if err := addRepair(ir, m, counters); err != nil {
		return err
	}
	ext, err := twcc.NewHeaderExtensionInterceptor()
	if err != nil {
		return fmt.Errorf("rtc: twcc header extension: %w", err)
	}
	ir.Add(ext)
	return nil
}

// BWE is the send-side bandwidth estimator of one PeerConnection: pion's gcc.SendSideBWE, as a
// cc.BandwidthEstimator. Read it with GetTargetBitrate and Stats (or pion's GetStats map);
// OnTargetBitrateChange subscribes to its changes.
type BWE struct {
	id    string
	est   *gcc.SendSideBWE
	pacer gcc.Pacer
	cfg   BWEConfig

	mu   sync.Mutex
	subs []func(int)
}

// ID is the PeerConnection's id as pion's interceptors know it.
func (b *BWE) ID() string { return b.id }

// Config is the estimator's configuration, defaults filled in.
func (b *BWE) Config() BWEConfig { return b.cfg }

// AddStream routes a local stream through the estimator's pacer. pion's pacers find a packet's
// writer by its SSRC and know only the media SSRC of each stream, so the stream's RTX and FEC
// SSRCs are added too, with the same writer (the NACK responder and the FlexFEC encoder write
// them through it); otherwise gcc's pacers would drop them. RTX packets are accounted as sent
// like the media; FEC packets, which carry no transport-wide sequence number, go to the pacer
// as they are (gcc would refuse them).
func (b *BWE) AddStream(info *interceptor.StreamInfo, writer interceptor.RTPWriter) interceptor.RTPWriter {
	if ssrc := info.SSRCRetransmission; ssrc != 0 && ssrc != info.SSRC {
		alias := *info
		alias.SSRC = ssrc
		b.est.AddStream(&alias, writer)
	}
	if ssrc := info.SSRCForwardErrorCorrection; ssrc != 0 && ssrc != info.SSRC {
		b.pacer.AddStream(ssrc, writer)
	}
	return b.est.AddStream(info, writer)
}

// WriteRTCP feeds the estimator TWCC (or RFC 8888) feedback.
func (b *BWE) WriteRTCP(pkts []rtcp.Packet, attr interceptor.Attributes) error {
	return b.est.WriteRTCP(pkts, attr)
}

// GetTargetBitrate is the current target, bit/s: the lower of the delay-based and the
// loss-based estimates.
func (b *BWE) GetTargetBitrate() int { return b.est.GetTargetBitrate() }

// GetStats is gcc's statistics map (lossTargetBitrate, averageLoss, delayTargetBitrate,
// delayMeasurement, delayEstimate, delayThreshold in ms, usage, state); Stats types it.
func (b *BWE) GetStats() map[string]any { return b.est.GetStats() }

// OnTargetBitrateChange adds f to the functions told of each change of the target (each call
// adds one; pion's own method sets a single one). f runs on a goroutine of its own per change,
// as gcc calls it, and gets the target current when it runs.
func (b *BWE) OnTargetBitrateChange(f func(bitrate int)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.subs = append(b.subs, f)
}

func (b *BWE) targetChanged(int) {
	b.mu.Lock()
	subs := b.subs
	b.mu.Unlock()
	rate := b.est.GetTargetBitrate()
	for _, f := range subs {
		f(rate)
	}
}

// Close stops the estimator and its pacer (pion closes it with the PeerConnection).
func (b *BWE) Close() error { return b.est.Close() }

// BWEStats is the estimator's state, typed from gcc's GetStats.
type BWEStats struct {
	// TargetBitrate is GetTargetBitrate; LossTargetBitrate and DelayTargetBitrate are the two
	// controllers' estimates (bit/s; 0 before the first feedback).
	TargetBitrate, LossTargetBitrate, DelayTargetBitrate int
	// AverageLoss is the loss controller's smoothed loss fraction (0..1) over the feedback.
	AverageLoss float64
	// DelayMeasurement, DelayEstimate and DelayThreshold are the delay controller's last
	// inter-group delay variation, its Kalman estimate, and the overuse detector's adaptive
	// threshold.
	DelayMeasurement, DelayEstimate, DelayThreshold time.Duration
	// Usage is the overuse detector's signal: "overuse", "underuse" or "normal". State is the
	// rate controller's: "increase", "decrease" or "hold".
	Usage, State string
}

// Stats returns the estimator's state.
func (b *BWE) Stats() BWEStats {
	m := b.est.GetStats()
	s := BWEStats{TargetBitrate: b.est.GetTargetBitrate()}
	s.LossTargetBitrate, _ = m["lossTargetBitrate"].(int)
	s.DelayTargetBitrate, _ = m["delayTargetBitrate"].(int)
	s.AverageLoss, _ = m["averageLoss"].(float64)
	ms := func(key string) time.Duration {
		v, _ := m[key].(float64)
		return time.Duration(v * float64(time.Millisecond))
	}
	s.DelayMeasurement, s.DelayEstimate, s.DelayThreshold = ms("delayMeasurement"), ms("delayEstimate"), ms("delayThreshold")
	s.Usage, _ = m["usage"].(string)
	s.State, _ = m["state"].(string)
	return s
}
