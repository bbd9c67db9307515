package scenario

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/transport/v5"

	"github.com/siprtc/siprtc/gateway/rtc"
	"github.com/siprtc/siprtc/gateway/signaling"
	"github.com/siprtc/siprtc/lab/metrics"
	"github.com/siprtc/siprtc/lab/netem"
	"github.com/siprtc/siprtc/lab/peers/sipphone"
	"github.com/siprtc/siprtc/lab/peers/webclient"
)

// MediaPath is the direction of the media whose repair an ARQ case measures: the lossy
// direction of the client's link.
type MediaPath int

const (
	// ClientToGateway: the client's media crosses its lossy uplink; the gateway NACKs, the
	// client retransmits (RTX for video, the media SSRC for audio), and the phone receives
	// what the gateway forwards.
	ClientToGateway MediaPath = iota
	// GatewayToClient: the phone's media, forwarded by the gateway, crosses the client's lossy
	// downlink; the client NACKs, the gateway retransmits.
	GatewayToClient
)

// MarshalText makes a MediaPath its name in JSON.
func (p MediaPath) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

func (p MediaPath) String() string {
	switch p {
	case ClientToGateway:
		return "client-to-gateway"
	case GatewayToClient:
		return "gateway-to-client"
	}
	return fmt.Sprintf("MediaPath(%d)", int(p))
}

// Defaults of an ARQCase.
const (
	// DefaultARQDuration is the measured stretch of media (virtual time).
	DefaultARQDuration = 30 * time.Second
	// DefaultARQDeadline is the playout deadline, for audio and video alike: a fixed playout
	// buffer of 400 ms after the earliest packet's arrival (metrics.StreamOptions.Deadline).
	DefaultARQDeadline = 400 * time.Millisecond
	// DefaultARQVideoBitrate and DefaultARQFPS are the synthetic VP8 encoders' (both peers).
	DefaultARQVideoBitrate = 500_000
	DefaultARQFPS          = 30
)

// The repair machinery the ARQ theory models: pion's NACK generator (gateway/rtc leaves it at
// its defaults, the gateway's and the client's alike) reports every missing sequence number
// every 100 ms, with no retry limit, until the packet arrives or leaves its receive log; the
// responder resends a packet at most once per estimated RTT + 5 ms (pion/interceptor v0.1.51).
const (
	arqNACKInterval = 100 * time.Millisecond
	arqAudioFrame   = 20 * time.Millisecond
	// arqWarmup passes between the first media at both ends and the window: RTCP has given the
	// responders their RTT estimate (before it, a retransmission may be repeated once per
	// NACK), and the first key frames are through.
	arqWarmup = 3 * time.Second
	// arqSettle passes between the window's end and the logs' snapshot: longer than the
	// deadline, so every repair that could be on time for a packet of the window has arrived.
	arqSettle = 2 * time.Second
)

// ARQCase is one ARQ measurement: a WebRTC -> SIP call carrying G.711 audio (20 ms) and
// synthetic VP8 video (RTX on the WebRTC leg) both ways, with loss on one direction of the
// client's link and the round trip on both.
type ARQCase struct {
	Path MediaPath `json:"path"`
	// Loss is the loss model of the forward direction (Bernoulli or Gilbert-Elliott).
	Loss netem.LossModel `json:"loss"`
	// RTT is the client link's round trip, half each way; every other link is perfect.
	RTT time.Duration `json:"rtt_ns"`
	// Duration of the measured window (default DefaultARQDuration).
	Duration time.Duration `json:"duration_ns"`
	// Deadline is the playout deadline (default DefaultARQDeadline).
	Deadline time.Duration `json:"deadline_ns"`
	// VideoBitrate and FPS of both synthetic encoders (defaults DefaultARQVideoBitrate,
	// DefaultARQFPS).
	VideoBitrate int `json:"video_bitrate_bps"`
	FPS          int `json:"fps"`
	// Seed of the emulated network (0: 1).
	Seed int64 `json:"seed"`
	// AudioRTX: the client offers RTX (RFC 4588) for its audio, as browsers do not; the audio
	// is then repaired over RTX both ways instead of plain retransmissions.
	AudioRTX bool `json:"audio_rtx,omitempty"`
}

func (c ARQCase) withDefaults() ARQCase {
	if c.Duration <= 0 {
		c.Duration = DefaultARQDuration
	}
	if c.Deadline <= 0 {
		c.Deadline = DefaultARQDeadline
	}
	if c.VideoBitrate <= 0 {
		c.VideoBitrate = DefaultARQVideoBitrate
	}
	if c.FPS <= 0 {
		c.FPS = DefaultARQFPS
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	return c
}

// Name is the case as measurements name it, as "client-to-gateway bernoulli 5% rtt=50ms".
func (c ARQCase) Name() string {
	name := fmt.Sprintf("%s %s rtt=%v", c.Path, LossName(c.Loss), c.RTT)
	if c.AudioRTX {
		name += " audio-rtx"
	}
	return name
}

// LossName describes a loss model briefly: "bernoulli 5%", "gilbert-elliott p=0.01 r=0.3".
func LossName(l netem.LossModel) string {
	switch l.Kind {
	case netem.LossBernoulli:
		return fmt.Sprintf("bernoulli %g%%", 100*l.Rate)
	case netem.LossGilbertElliott:
		return fmt.Sprintf("gilbert-elliott p=%g r=%g", l.P, l.R)
	}
	return "lossless"
}

// WorldConfig is the emulated world of the case: the client link delays RTT/2 each way and
// loses on the forward direction only (the NACKs cross the other, lossless, direction).
func (c ARQCase) WorldConfig() Config {
	c = c.withDefaults()
	fwd := netem.LinkConfig{Delay: netem.DelayModel{Base: c.RTT / 2}, Loss: c.Loss}
	back := netem.LinkConfig{Delay: netem.DelayModel{Base: c.RTT / 2}}
	l := Link{Up: fwd, Down: back}
	if c.Path == GatewayToClient {
		l = Link{Up: back, Down: fwd}
	}
	return Config{Emulated: true, Seed: c.Seed, Links: map[string]Link{HostClient: l}}
}

// ARQStream is what one forward stream (audio or video) showed over the window.
type ARQStream struct {
	Kind      string `json:"kind"`
	ClockRate int    `json:"clock_rate"`
	// Receiver is the receiving end's analysis of the window (metrics.AnalyzeStream on its
	// receive log, without a send log: the gateway rewrites sequence numbers): post-repair
	// loss, late packets against the deadline, effective loss, repairs.
	Receiver metrics.StreamStats `json:"receiver"`
	// Voice is the E-model's estimate for audio (nil for video): see arqVoiceInput.
	Voice *metrics.VoiceQuality `json:"voice,omitempty"`
	// MOSMin is the MOS of the same call with Bound's loss: the voice quality ARQ guarantees.
	MOSMin float64 `json:"mos_min,omitempty"`
	// Rounds is the number of retransmission rounds the deadline allows (metrics.ARQRounds),
	// NACKDelay the per-round detection and NACK pacing the model charges.
	Rounds    int           `json:"rounds"`
	NACKDelay time.Duration `json:"nack_delay_ns"`
	// Theory is the effective loss (lost or late) the ARQ model allows (see arqResidual);
	// Bound its 99% Wilson upper limit for SampleSize packets (Receiver.Expected, or its
	// effective size under correlated loss): the measured EffectiveLossRate is asserted
	// against Bound.
	Theory     float64 `json:"theory"`
	Bound      float64 `json:"bound"`
	SampleSize int     `json:"sample_size"`
	// Originals and Retransmissions are the sender's first transmissions of the window's
	// packets and its retransmissions of them (NACK responses on the media SSRC, or RTX).
	Originals       int `json:"originals"`
	Retransmissions int `json:"retransmissions"`
	// Overhead is Retransmissions / Originals (packets); OverheadBytes the same in bytes
	// (metrics' RTX overhead of the sender's log) when the sender's log has sizes (the
	// client's), else 0.
	Overhead      float64 `json:"overhead"`
	OverheadBytes float64 `json:"overhead_bytes"`
	// RetxShare is Retransmissions / (Originals + Retransmissions). When every lost
	// transmission (first or repeated) is resent exactly once and nothing else is, it is the
	// loss rate of the forward channel (the overhead is then p/(1-p) = p + p^2 + ...):
	// RetxLow and RetxHigh are the 99% Wilson limits around the channel's measured loss rate
	// for RetxSample transmissions (effective size under correlated loss). Below: losses not
	// repaired (a NACK never sent); above: spurious retransmissions.
	RetxShare  float64 `json:"retx_share"`
	RetxLow    float64 `json:"retx_low"`
	RetxHigh   float64 `json:"retx_high"`
	RetxSample int     `json:"retx_sample"`
	// ExpectedOverhead is the overhead the loss model predicts, p/(1-p) for its stationary
	// loss rate p.
	ExpectedOverhead float64 `json:"expected_overhead"`
}

// ARQResult is what MeasureARQ observed.
type ARQResult struct {
	Case ARQCase `json:"case"`
	// Start and End bound the window (virtual time).
	Start, End time.Time `json:"-"`
	// Channel is the forward direction's datagram counts over the window.
	ChannelOffered int64   `json:"channel_offered"`
	ChannelDropped int64   `json:"channel_dropped"`
	ChannelLoss    float64 `json:"channel_loss"`
	// ModelLoss is the loss model's stationary loss rate, Correlation its lag-1
	// autocorrelation of losses (0 for Bernoulli, 1-P-R for Gilbert-Elliott).
	ModelLoss   float64   `json:"model_loss"`
	Correlation float64   `json:"correlation"`
	Audio       ARQStream `json:"audio"`
	Video       ARQStream `json:"video"`
	// Client is the client's repair counters at the snapshot (whole call); Gateway the
	// gateway's /metrics repair and media counters that moved during the window.
	Client  rtc.RepairStats    `json:"client"`
	Gateway map[string]float64 `json:"gateway"`
}

// MeasureARQ places one WebRTC -> SIP call in w (built from c.WorldConfig()) with audio and
// video both ways, lets it run arqWarmup, measures c.Duration of media, waits arqSettle and
// analyses the forward stream of each kind at its receiver: the phone's audio log and a tap of
// the phone's video socket for ClientToGateway, the client's receive log for GatewayToClient.
// A packet counts in the window when its first transmission would have arrived inside it.
// Retransmissions come from the client's send log (ClientToGateway) or the gateway's counters
// over the window (GatewayToClient).
func MeasureARQ(w *World, c ARQCase) (ARQResult, error) {
	c = c.withDefaults()
	res := ARQResult{Case: c}
	res.ModelLoss, res.Correlation = lossModelStats(c.Loss)
	ctx, cancel := context.WithTimeout(w.Context(), c.Duration+time.Minute)
	defer cancel()

	tap := &arqTapNet{Net: w.Host(HostPhone).Net, limit: 1 << 20}
	phone, err := w.phoneOn(tap, DefaultSetupPhone, sipphone.Video("VP8", c.VideoBitrate, c.FPS))
	if err != nil {
		return res, err
	}
	phone.OnIncoming(func(in *sipphone.Incoming) { _, _ = in.Answer() })
	opts := []webclient.Option{webclient.WithVideo(c.VideoBitrate, c.FPS, 0)}
	if c.AudioRTX {
		opts = append(opts, webclient.WithAudioRTX())
	}
	cl, err := w.NewClient(DefaultSetupClient, func(cfg *webclient.Config) { cfg.Video = true }, opts...)
	if err != nil {
		return res, err
	}
	call, pc, err := mediaCall(ctx, w, cl, phone)
	if call != nil {
		defer func() { _ = call.Hangup(w.Context(), "done") }()
	}
	if err != nil {
		return res, err
	}
	time.Sleep(arqWarmup)

	fwd := w.Host(HostClient).Netem.Up
	if c.Path == GatewayToClient {
		fwd = w.Host(HostClient).Netem.Down
	}
	ch0, gw0 := fwd.Stats(), scrapeGatewayMetrics(w)
	res.Start = time.Now()
	time.Sleep(c.Duration)
	res.End = time.Now()
	ch1, gw1 := fwd.Stats(), scrapeGatewayMetrics(w)
	time.Sleep(arqSettle)

	res.ChannelOffered = ch1.OfferedPackets - ch0.OfferedPackets
	res.ChannelDropped = ch1.DroppedLoss - ch0.DroppedLoss
	res.ChannelLoss = arqRatio(float64(res.ChannelDropped), float64(res.ChannelOffered))
	res.Gateway = map[string]float64{}
	for k, v := range gw1 {
		if d := v - gw0[k]; d != 0 {
			res.Gateway[k] = d
		}
	}
	res.Client = call.Stats().Repair

	switch c.Path {
	case ClientToGateway:
		sent, _ := call.Packets()
		phoneAudio := pc.Media().Received()
		videoPort := pc.Media().Stats().Video.LocalAddr.Port()
		if res.Audio, err = analyzeClientToGateway(c, "audio", 8000, phoneRecv(phoneAudio), sent, res); err != nil {
			return res, err
		}
		if res.Video, err = analyzeClientToGateway(c, "video", 90000, tap.received(videoPort), sent, res); err != nil {
			return res, err
		}
	case GatewayToClient:
		_, recv := call.Packets()
		for _, kind := range []string{"audio", "video"} {
			st, err := analyzeGatewayToClient(c, kind, clientRecv(recv, kind), gw0, gw1, res)
			if err != nil {
				return res, err
			}
			if kind == "audio" {
				res.Audio = st
			} else {
				res.Video = st
			}
		}
	}
	if err := call.Hangup(ctx, "done"); err != nil {
		return res, fmt.Errorf("scenario: hangup: %w", err)
	}
	select {
	case <-pc.Done():
	case <-ctx.Done():
		return res, errors.New("scenario: the client's hangup did not reach the phone")
	}
	return res, w.Quiesce(30 * time.Second)
}

// ---- the receiver's side ----

// arqRecv is a receive-log entry of any peer.
type arqRecv struct {
	at       time.Time
	ssrc     uint32
	seq      uint16
	ts       uint32
	size     int
	repaired string
}

func phoneRecv(log []sipphone.PacketRecord) []arqRecv {
	out := make([]arqRecv, 0, len(log))
	for _, r := range log {
		out = append(out, arqRecv{at: r.Arrival, ssrc: r.SSRC, seq: r.Seq, ts: r.Timestamp, size: r.Size, repaired: r.Repaired})
	}
	return out
}

func clientRecv(log []webclient.PacketRecord, kind string) []arqRecv {
	var out []arqRecv
	for _, r := range log {
		if r.Kind == kind {
			out = append(out, arqRecv{at: r.At, ssrc: r.SSRC, seq: r.Seq, ts: r.Timestamp, size: r.Size, repaired: r.Repaired})
		}
	}
	return out
}

// arqWindow keeps the main source's entries whose sequence numbers were first sent inside
// [start, end]: the first and last sequence numbers that arrived without repair inside the
// window, plus every entry between them, whenever it arrived (repairs arrive later). The
// result is in arrival order, as metrics.AnalyzeStream wants it.
func arqWindow(log []arqRecv, start, end time.Time) []metrics.RecvPacket {
	count := map[uint32]int{}
	var main uint32
	for _, r := range log {
		if count[r.ssrc]++; count[r.ssrc] > count[main] {
			main = r.ssrc
		}
	}
	var u arqUnwrapper
	ext := make([]int64, len(log))
	lo, hi := int64(math.MaxInt64), int64(math.MinInt64)
	for i, r := range log {
		if r.ssrc != main {
			continue
		}
		ext[i] = u.ext(r.seq)
		if r.repaired == "" && !r.at.Before(start) && !r.at.After(end) {
			lo, hi = min(lo, ext[i]), max(hi, ext[i])
		}
	}
	var out []metrics.RecvPacket
	for i, r := range log {
		if r.ssrc != main || ext[i] < lo || ext[i] > hi {
			continue
		}
		out = append(out, metrics.RecvPacket{Arrival: r.at, Seq: r.seq, Timestamp: r.ts, Size: r.size, Repaired: r.repaired})
	}
	return out
}

// arqUnwrapper extends 16-bit sequence numbers to the value nearest the highest seen.
type arqUnwrapper struct {
	max     int64
	started bool
}

func (u *arqUnwrapper) ext(seq uint16) int64 {
	if !u.started {
		u.max, u.started = int64(seq), true
		return u.max
	}
	v := u.max + int64(int16(seq-uint16(u.max)))
	u.max = max(u.max, v)
	return v
}

// receiverStats analyses the window of one stream and fills in the model's bound.
func receiverStats(c ARQCase, kind string, clock int, log []arqRecv, res ARQResult) (ARQStream, error) {
	st := ARQStream{Kind: kind, ClockRate: clock}
	// The model's delay before each round: the gap to the next packet that reveals a loss (a
	// packet interval: 20 ms of audio, a frame of video) and the wait for the generator's
	// next report.
	gap := arqAudioFrame
	if kind == "video" {
		gap = time.Second / time.Duration(c.FPS)
	}
	st.NACKDelay = gap + arqNACKInterval
	st.Rounds = metrics.ARQRounds(c.Deadline, c.RTT, st.NACKDelay)
	recv := arqWindow(log, res.Start, res.End)
	if len(recv) == 0 {
		return st, fmt.Errorf("scenario: no %s received in the window", kind)
	}
	var err error
	st.Receiver, err = metrics.AnalyzeStream(recv, nil, metrics.StreamOptions{ClockRate: clock, Deadline: c.Deadline})
	if err != nil {
		return st, err
	}
	st.Theory = arqResidual(c, st.Rounds)
	st.SampleSize = effectiveSample(st.Receiver.Expected, res.Correlation)
	st.Bound = metrics.UpperBound(st.Theory, st.SampleSize, metrics.Z99)
	if kind == "audio" {
		in := arqVoiceInput(c, st.Receiver)
		q := metrics.EModel(in)
		st.Voice = &q
		// The MOS the model's bound still allows: the same call with the bound's loss.
		in.LossPercent = 100 * st.Bound
		st.MOSMin = metrics.EModel(in).MOS
	}
	return st, nil
}

// arqVoiceInput is the E-model's view of an audio stream through a fixed playout buffer of
// the deadline: mouth to ear = packetisation (one 20 ms frame) + the one-way network delay
// (RTT/2) + the buffer; loss = what arrived too late or never (after repair), with the burst
// ratio of that loss pattern; G.711 with packet-loss concealment (G.113 Appendix I).
func arqVoiceInput(c ARQCase, r metrics.StreamStats) metrics.VoiceInput {
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return metrics.VoiceInput{
		DelayMs:     ms(arqAudioFrame + c.RTT/2 + c.Deadline),
		JitterMs:    ms(r.Jitter),
		LossPercent: 100 * r.EffectiveLossRate,
		BurstR:      r.Gilbert.BurstR,
		Codec:       metrics.CodecG711PLC,
	}
}

// arqResidual is the effective loss (lost, or repaired after the deadline) that k
// retransmission rounds leave.
//
// Bernoulli loss p: a packet misses its deadline only if its first transmission and the k
// retransmissions that can arrive in time are all lost: p^(k+1) (metrics.ARQResidualLoss; the
// NACKs cross the lossless direction).
//
// Gilbert-Elliott (P: good -> bad, R: bad -> good per packet, loss LossGood in good and LossBad
// in bad; λ = 1-P-R): successive transmissions of one packet are not independent, since a
// retransmission crosses the channel only m packets after the transmission it replaces, and the
// state m packets after a bad one is still bad with probability π_B + π_G·λ^m (π the
// stationary distribution). A retransmission leaves at least one RTT after the transmission it
// replaces (the loss is seen at the receiver, the NACK crosses back), and within one RTT the
// forward direction carries at least one audio packet per 20 ms and one video packet per frame,
// so m >= m_min = floor(RTT/20 ms) + floor(RTT·fps). Given that the previous transmission was
// lost, whatever the state then, the next one is lost with probability at most
//
//	q = LossBad·(π_B + π_G·|λ|^m_min) + LossGood·(1 - π_B - π_G·|λ|^m_min)
//
// (the bad state is the worse one; by the Markov property the earlier history does not
// matter), so the residual is at most π_loss · q^k, π_loss the stationary loss rate.
//
// This is the one computation lab/metrics lacks (it has ARQResidualLoss for Bernoulli): swap
// it for the metrics call when one exists.
func arqResidual(c ARQCase, k int) float64 {
	switch c.Loss.Kind {
	case netem.LossBernoulli:
		return metrics.ARQResidualLoss(c.Loss.Rate, k)
	case netem.LossGilbertElliott:
		l := c.Loss
		if l.P+l.R == 0 {
			return l.LossGood
		}
		piB := l.P / (l.P + l.R)
		piG := 1 - piB
		lambda := math.Abs(1 - l.P - l.R)
		m := int(c.RTT/arqAudioFrame) + int(c.RTT.Seconds()*float64(c.FPS))
		stayBad := piB + piG*math.Pow(lambda, float64(m))
		q := l.LossBad*stayBad + l.LossGood*(1-stayBad)
		loss := piB*l.LossBad + piG*l.LossGood
		return loss * math.Pow(q, float64(k))
	}
	return 0
}

// lossModelStats returns a loss model's stationary loss rate and the lag-1 autocorrelation of
// its losses (0 for Bernoulli; for Gilbert's model, LossGood 0 and LossBad 1, it is λ = 1-P-R).
func lossModelStats(l netem.LossModel) (rate, corr float64) {
	switch l.Kind {
	case netem.LossBernoulli:
		return l.Rate, 0
	case netem.LossGilbertElliott:
		if l.P+l.R == 0 {
			return l.LossGood, 0
		}
		piB := l.P / (l.P + l.R)
		rate = piB*l.LossBad + (1-piB)*l.LossGood
		if l.LossGood == 0 && l.LossBad == 1 {
			corr = 1 - l.P - l.R
		} else {
			// Losses in Gilbert-Elliott are a hidden-state process: their correlation is
			// at most the state's, which bounds the variance inflation used below.
			corr = math.Abs(1 - l.P - l.R)
		}
		return rate, corr
	}
	return 0, 0
}

// effectiveSample is the number of independent trials n correlated ones are worth for a rate
// estimate: a sum of n indicators with lag-j correlation ρ^j has (1+ρ)/(1-ρ) times the
// binomial variance, so n_eff = n(1-ρ)/(1+ρ).
func effectiveSample(n int, rho float64) int {
	if rho <= 0 || rho >= 1 {
		return n
	}
	return max(int(float64(n)*(1-rho)/(1+rho)), 1)
}

// fillOverhead fills the sender's side: retransmissions against originals, and their share
// against the model's loss rate.
//
// The share of retransmissions is compared with the loss the channel actually dealt over the
// window (netem's count for the forward direction), not with the model's rate: the realized
// rate of a seeded run is itself a draw (a 30 s run at 5% can deal 3.6%), and what the check
// is about is the repair machinery's response to the losses it met.
func fillOverhead(st *ARQStream, originals, retransmissions int, res ARQResult) {
	st.Originals, st.Retransmissions = originals, retransmissions
	st.Overhead = arqRatio(float64(retransmissions), float64(originals))
	total := originals + retransmissions
	st.RetxShare = arqRatio(float64(retransmissions), float64(total))
	st.RetxSample = effectiveSample(total, res.Correlation)
	// 99.9%: the suite makes about a hundred such checks per run, and CI must not cry wolf.
	st.RetxLow = metrics.LowerBound(res.ChannelLoss, st.RetxSample, metrics.Z999)
	st.RetxHigh = metrics.UpperBound(res.ChannelLoss, st.RetxSample, metrics.Z999)
	st.ExpectedOverhead = arqRatio(res.ModelLoss, 1-res.ModelLoss)
}

// analyzeClientToGateway: the phone receives (recv), the client's send log has the originals
// and retransmissions of kind.
func analyzeClientToGateway(c ARQCase, kind string, clock int, recv []arqRecv, sent []webclient.PacketRecord, res ARQResult) (ARQStream, error) {
	st, err := receiverStats(c, kind, clock, recv, res)
	if err != nil {
		return st, err
	}
	// Originals sent in the window (shifted by the one-way delay, so that they are the ones
	// that would arrive in it), and the retransmissions of those sequence numbers.
	owd := c.RTT / 2
	start, end := res.Start.Add(-owd), res.End.Add(-owd)
	inWindow := map[uint16]bool{}
	var log []metrics.SentPacket
	originals := 0
	for _, r := range sent {
		if r.Kind != kind || r.Retransmission || r.Repaired == webclient.RepairFEC || r.At.Before(start) || r.At.After(end) {
			continue
		}
		inWindow[r.Seq] = true
		originals++
		log = append(log, metrics.SentPacket{At: r.At, Seq: r.Seq, Size: r.Size, Kind: metrics.SentMedia})
	}
	retx := 0
	for _, r := range sent {
		if r.Kind == kind && r.Retransmission && inWindow[r.Seq] {
			retx++
			log = append(log, metrics.SentPacket{At: r.At, Seq: r.Seq, Size: r.Size, Kind: metrics.SentRTX})
		}
	}
	fillOverhead(&st, originals, retx, res)
	// Bytes: metrics' overhead of the send log (RTX bytes / media bytes); only the overhead
	// fields of this analysis are meaningful (there is no receive log in it).
	if ov, err := metrics.AnalyzeStream(nil, log, metrics.StreamOptions{ClockRate: clock}); err == nil {
		st.OverheadBytes = ov.Overhead.RTX
	}
	return st, nil
}

// analyzeGatewayToClient: the client receives (recv); the gateway's counters over the window
// give its first transmissions to the client (media packets sent on the WebRTC leg) and its
// retransmissions (RTX for video; the rest, on the media SSRC, audio).
func analyzeGatewayToClient(c ARQCase, kind string, recv []arqRecv, gw0, gw1 map[string]float64, res ARQResult) (ARQStream, error) {
	clock := 8000
	if kind == "video" {
		clock = 90000
	}
	st, err := receiverStats(c, kind, clock, recv, res)
	if err != nil {
		return st, err
	}
	delta := func(k string) int { return int(gw1[k] - gw0[k]) }
	originals := delta(fmt.Sprintf(`siprtc_media_packets_sent_total{leg="webrtc",kind="%s"}`, kind))
	rtx := delta(`siprtc_webrtc_repairs_total{type="rtx_sent"}`)
	retx := rtx
	if kind == "audio" {
		retx = delta(`siprtc_webrtc_repairs_total{type="retransmissions"}`) - rtx
	}
	fillOverhead(&st, originals, retx, res)
	return st, nil
}

func arqRatio(num, den float64) float64 {
	if den == 0 {
		return 0
	}
	return num / den
}

// scrapeGatewayMetrics reads the gateway's /metrics (in process) into sample -> value.
func scrapeGatewayMetrics(w *World) map[string]float64 {
	rec := httptest.NewRecorder()
	w.Gateway().MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	out := map[string]float64{}
	sc := bufio.NewScanner(rec.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

// ---- the phone's video tap ----

// arqTapNet is a transport.Net that logs the RTP datagrams its sockets receive, by local port:
// the phone keeps no per-packet log of the video it receives, so its sockets are tapped (the
// phone reads every datagram of its video port at once, so the tap's arrival time is the
// phone's).
type arqTapNet struct {
	transport.Net
	limit int

	mu  sync.Mutex
	log map[uint16][]arqRecv
	// high is the highest extended sequence number seen per port and SSRC: a packet below it
	// arrived after a newer one, which is how the phone marks a repair (it NACKs nothing; the
	// lab's links do not reorder).
	high map[uint16]map[uint32]*arqUnwrapper
}

func (n *arqTapNet) ListenPacket(network, address string) (net.PacketConn, error) {
	c, err := n.Net.ListenPacket(network, address)
	if err != nil {
		return nil, err
	}
	port := uint16(0)
	if a, ok := c.LocalAddr().(*net.UDPAddr); ok {
		port = uint16(a.Port)
	}
	return &arqTapConn{PacketConn: c, n: n, port: port}, nil
}

type arqTapConn struct {
	net.PacketConn
	n    *arqTapNet
	port uint16
}

func (c *arqTapConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, addr, err := c.PacketConn.ReadFrom(b)
	if err == nil {
		c.n.record(c.port, b[:n])
	}
	return n, addr, err
}

func (n *arqTapNet) record(port uint16, b []byte) {
	// RTP version 2, and not RTCP (payload types 192-223 with the marker bit: RFC 5761).
	if len(b) < 12 || b[0]>>6 != 2 || (b[1] >= 192 && b[1] <= 223) {
		return
	}
	var h rtp.Header
	if _, err := h.Unmarshal(b); err != nil {
		return
	}
	now := time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.log == nil {
		n.log, n.high = map[uint16][]arqRecv{}, map[uint16]map[uint32]*arqUnwrapper{}
	}
	if len(n.log[port]) >= n.limit {
		return
	}
	if n.high[port] == nil {
		n.high[port] = map[uint32]*arqUnwrapper{}
	}
	u := n.high[port][h.SSRC]
	if u == nil {
		u = &arqUnwrapper{}
		n.high[port][h.SSRC] = u
	}
	before := u.max
	started := u.started
	e := arqRecv{at: now, ssrc: h.SSRC, seq: h.SequenceNumber, ts: h.Timestamp, size: len(b)}
	if x := u.ext(h.SequenceNumber); started && x < before {
		e.repaired = metrics.RepairNACK
	}
	n.log[port] = append(n.log[port], e)
}

// received returns the log of one local port.
func (n *arqTapNet) received(port uint16) []arqRecv {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]arqRecv(nil), n.log[port]...)
}

// phoneOn starts a SIP phone for a directory user on the phone host, opening its sockets
// through n (a wrapper of the host's Net), and registers it: World.Phone with a tap.
func (w *World) phoneOn(n transport.Net, user string, opts ...sipphone.Option) (*sipphone.Phone, error) {
	h := w.hosts[HostPhone]
	pw, ok := w.pbx.Password(user)
	if !ok {
		return nil, fmt.Errorf("scenario: %s is not a directory user of the PBX", user)
	}
	ph, err := sipphone.New(sipphone.Config{
		Net: n, LocalIP: h.IP, User: user, Password: pw, Domain: w.pbx.Domain(),
		Registrar: w.pbx.SIPAddr(), Support100rel: true, Logger: w.log.With("who", "phone "+user),
	}, opts...)
	if err != nil {
		return nil, err
	}
	if err := ph.Start(w.ctx); err != nil {
		return nil, err
	}
	w.addPeer(ph.Close)
	if _, err := ph.Register(w.ctx, time.Minute); err != nil {
		return nil, fmt.Errorf("scenario: register %s: %w", user, err)
	}
	return ph, nil
}

// mediaCall connects cl, calls the phone (DefaultSetupPhone) and waits until the call is
// accepted and audio and video flow at both ends. It returns the call whenever one was placed
// (the caller hangs it up), with the phone's side once it has it.
func mediaCall(ctx context.Context, w *World, cl *webclient.Client, phone *sipphone.Phone) (*webclient.Call, *sipphone.Call, error) {
	if err := cl.Connect(ctx); err != nil {
		return nil, nil, fmt.Errorf("scenario: client: %w", err)
	}
	call, err := cl.Call(ctx, DefaultSetupPhone)
	if err != nil {
		return nil, nil, fmt.Errorf("scenario: invite: %w", err)
	}
	if _, err := call.WaitState(ctx, string(signaling.LocalAcceptedByRemote)); err != nil {
		return call, nil, err
	}
	var pc *sipphone.Call
	if err := WaitFor(ctx, 10*time.Second, func() bool {
		if calls := phone.Calls(); len(calls) == 1 {
			pc = calls[0]
		}
		return pc != nil
	}); err != nil {
		return call, nil, fmt.Errorf("scenario: the phone has no call: %w", err)
	}
	if err := call.WaitMedia(ctx, 10, 5); err != nil {
		return call, pc, fmt.Errorf("scenario: no media at the client: %w", err)
	}
	if err := WaitFor(ctx, 10*time.Second, func() bool {
		s := pc.Media().Stats()
		return s.PacketsReceived >= 10 && s.Video.FramesReceived >= 5
	}); err != nil {
		return call, pc, fmt.Errorf("scenario: no media at the phone: %+v", pc.Media().Stats())
	}
	return call, pc, nil
}
