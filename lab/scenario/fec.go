package scenario

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/transport/v5"

	"github.com/siprtc/siprtc/gateway"
	"github.com/siprtc/siprtc/gateway/fec"
	"github.com/siprtc/siprtc/gateway/rtc"
	"github.com/siprtc/siprtc/lab/metrics"
	"github.com/siprtc/siprtc/lab/netem"
	"github.com/siprtc/siprtc/lab/peers/sipphone"
	"github.com/siprtc/siprtc/lab/peers/webclient"
)

// Defaults of an FECCase.
const (
	// DefaultFECDuration is the measured stretch of media (virtual time).
	DefaultFECDuration = 30 * time.Second
	// DefaultFECVideoBitrate and DefaultFECFPS are the forward video encoder's (the synthetic
	// VP8 of the lossy direction's sender); the reverse direction's video runs at
	// fecReverseBitrate, enough to keep the call's video alive at a fraction of the cost.
	DefaultFECVideoBitrate = 500_000
	DefaultFECFPS          = 30
)

const (
	// fecWarmup passes between the first media at both ends and the window: the first key
	// frames and RED's first packets (fewer than distance blocks) are through.
	fecWarmup = 2 * time.Second
	// fecSettle passes between the window's end and the logs' snapshot: longer than a
	// one-way delay plus a FlexFEC batch, after which nothing of the window can be rebuilt.
	fecSettle = time.Second
	// fecReverseBitrate is the video bitrate of the direction that is not measured.
	fecReverseBitrate = 100_000
	// fecNoNACK is the NACKSkipLastN (rtc.Config) that silences pion's NACK generator: it
	// reports the missing sequence numbers from the oldest not yet received up to the newest
	// minus skipLastN, and with skipLastN = 2^15 that end lies, modulo 2^16, behind the start
	// for any receive log (at most 2^15 packets), so it never reports anything. Nothing
	// NACKed, nothing retransmitted: the receiver is left with what FEC repaired.
	fecNoNACK = 1 << 15
	// fecHeaderSlack bounds how much larger a FlexFEC packet is than the largest media packet
	// it protects: the FlexFEC-03 header (20 bytes with one SSRC and a 15-bit mask, 24 with
	// 46 bits) and header extensions the FEC packet may carry that its media do not.
	fecHeaderSlack = 32
	// fecWireLimit bounds a wire log (the client's, the gateway's WebRTC leg's).
	fecWireLimit = 1 << 20
)

// FECCase is one FEC measurement: a WebRTC -> SIP call carrying Opus audio RED-framed
// (RFC 2198) and synthetic VP8 video protected by FlexFEC-03 on the WebRTC leg, both ways, with
// loss on one direction of the client's link and the round trip on both. NACK is off on both
// ends (see fecNoNACK), so what the receiver misses is what FEC left.
type FECCase struct {
	Path MediaPath `json:"path"`
	// Loss is the loss model of the forward direction (Bernoulli or Gilbert-Elliott).
	Loss netem.LossModel `json:"loss"`
	// RTT is the client link's round trip, half each way; every other link is perfect.
	RTT time.Duration `json:"rtt_ns"`
	// Duration of the measured window (default DefaultFECDuration).
	Duration time.Duration `json:"duration_ns"`
	// REDDistance is how many earlier Opus frames each RED packet repeats, both ways
	// (default rtc.DefaultREDDistance).
	REDDistance int `json:"red_distance"`
	// FECMediaPackets and FECPackets are the FlexFEC code, both ways: FECPackets FEC packets
	// for every FECMediaPackets video packets, FEC packet j protecting the media packets i
	// with i mod FECPackets = j (defaults rtc.DefaultFECMediaPackets and
	// rtc.DefaultFECPackets).
	FECMediaPackets int `json:"fec_media_packets"`
	FECPackets      int `json:"fec_packets"`
	// VideoBitrate and FPS of the forward video (defaults DefaultFECVideoBitrate,
	// DefaultFECFPS).
	VideoBitrate int `json:"video_bitrate_bps"`
	FPS          int `json:"fps"`
	// Seed of the emulated network (0: 1).
	Seed int64 `json:"seed"`
}

func (c FECCase) withDefaults() FECCase {
	if c.Duration <= 0 {
		c.Duration = DefaultFECDuration
	}
	if c.REDDistance <= 0 {
		c.REDDistance = rtc.DefaultREDDistance
	}
	if c.FECMediaPackets <= 0 {
		c.FECMediaPackets = rtc.DefaultFECMediaPackets
	}
	if c.FECPackets <= 0 {
		c.FECPackets = rtc.DefaultFECPackets
	}
	if c.VideoBitrate <= 0 {
		c.VideoBitrate = DefaultFECVideoBitrate
	}
	if c.FPS <= 0 {
		c.FPS = DefaultFECFPS
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	return c
}

// Name is the case as measurements name it, as
// "client-to-gateway bernoulli 5% rtt=50ms red=1 fec=5+2".
func (c FECCase) Name() string {
	c = c.withDefaults()
	return fmt.Sprintf("%s %s rtt=%v red=%d fec=%d+%d", c.Path, LossName(c.Loss), c.RTT, c.REDDistance, c.FECMediaPackets, c.FECPackets)
}

// WorldConfig is the emulated world of the case: the client link delays RTT/2 each way and
// loses on the forward direction only; the gateway has RED and FlexFEC on ([media] red,
// red_distance, flexfec, fec_media_packets, fec_packets), Opus first, and no NACK. Its
// gateway.WithRTC option (the gateway composes several: the world's own, with a container
// PBX, runs first and sets the WebRTC leg's Net) also taps the gateway's WebRTC sockets for
// MeasureFEC.
func (c FECCase) WorldConfig() Config {
	c = c.withDefaults()
	fwd := netem.LinkConfig{Delay: netem.DelayModel{Base: c.RTT / 2}, Loss: c.Loss}
	back := netem.LinkConfig{Delay: netem.DelayModel{Base: c.RTT / 2}}
	l := Link{Up: fwd, Down: back}
	if c.Path == GatewayToClient {
		l = Link{Up: back, Down: fwd}
	}
	return Config{
		Emulated: true, Seed: c.Seed, Links: map[string]Link{HostClient: l},
		Codecs: "opus,pcmu,pcma,vp8",
		GatewayConf: fmt.Sprintf("[media]\nred=1\nred_distance=%d\nflexfec=1\nfec_media_packets=%d\nfec_packets=%d\n",
			c.REDDistance, c.FECMediaPackets, c.FECPackets),
		Gateway: []gateway.Option{gateway.WithRTC(func(rc *rtc.Config) {
			rc.NACKSkipLastN = fecNoNACK
			// Tap the WebRTC leg's sockets (the SIP leg has its own Net): MeasureFEC finds
			// the tap by the gateway host's Net.
			if rc.Net != nil {
				wire := &fecWire{Net: rc.Net, limit: fecWireLimit}
				fecGatewayWires.Store(rc.Net, wire)
				rc.Net = wire
			}
		})},
	}
}

// fecGatewayWires holds the taps of the gateway's WebRTC sockets that WorldConfig installs,
// by the gateway host's transport.Net, until MeasureFEC takes them (a world built from
// WorldConfig and never measured leaves its entry, a few words, behind).
var fecGatewayWires sync.Map

// FECStream is what one forward stream (audio with RED, or video with FlexFEC) showed over
// the window.
type FECStream struct {
	Kind      string `json:"kind"`
	ClockRate int    `json:"clock_rate"`
	// Receiver is the receiving end's analysis of the window (metrics.AnalyzeStream on its
	// receive log, without a send log: the gateway rewrites sequence numbers). Its Expected
	// are the protected media packets, its Lost what FEC left.
	Receiver metrics.StreamStats `json:"receiver"`
	// Recovered are the window's packets the receiver's decoder rebuilt (the gateway's
	// counters for ClientToGateway, the client's receive log for GatewayToClient);
	// ChannelLost = Recovered + Receiver.Lost are the media packets the channel took (NACK
	// is off: nothing else repairs), PreFECLoss their share of Receiver.Expected.
	Recovered   int     `json:"recovered"`
	ChannelLost int     `json:"channel_lost"`
	PreFECLoss  float64 `json:"pre_fec_loss"`
	// Residual is Receiver.LossRate, the loss after FEC. Theory is what the code leaves
	// under the case's loss model (fec.FlexFECResidualLoss, fec.REDResidualLoss, or the
	// Gilbert-Elliott bounds of fecGEResidual), Bound its 99% Wilson upper limit for
	// SampleSize packets (Receiver.Expected over the variance inflation of clustered
	// residual losses: see fecSample).
	Residual   float64 `json:"residual"`
	Theory     float64 `json:"theory"`
	Bound      float64 `json:"bound"`
	SampleSize int     `json:"sample_size"`
	// Fixable is the share of the channel's losses the code can rebuild (1 - theory/p at the
	// loss rate the channel dealt in the window; for Gilbert-Elliott the model's lower
	// bound), RecoveredMin the 99.9% Wilson lower limit of Fixable over RecoverySample of the
	// ChannelLost losses, times ChannelLost: Recovered must reach it.
	Fixable        float64 `json:"fixable"`
	RecoveredMin   float64 `json:"recovered_min"`
	RecoverySample int     `json:"recovery_sample"`
	// The repair traffic the sender put on its wire during the window (the client's for
	// ClientToGateway, the gateway's WebRTC leg's for GatewayToClient; RTP sizes, the SRTP
	// tag taken off). Video: MediaBytes and RepairBytes of the VP8 and FlexFEC packets,
	// Overhead = RepairBytes / MediaBytes against [OverheadLow, OverheadHigh], about [K/N,
	// K/N·(largest media packet + fecHeaderSlack)/mean media packet] (fecVideoOverhead).
	// Audio: MediaBytes are the RED packets' primary Opus frames (PrimarySize each),
	// RepairBytes the rest of their payloads (RED headers and redundant frames), Overhead
	// their ratio against [d, d + (1+4d)/PrimarySize] (fecAudioOverhead).
	MediaPackets     int     `json:"media_packets"`
	RepairPackets    int     `json:"repair_packets"`
	MediaBytes       int64   `json:"media_bytes"`
	RepairBytes      int64   `json:"repair_bytes"`
	PrimarySize      int     `json:"primary_size,omitempty"`
	Overhead         float64 `json:"overhead"`
	ExpectedOverhead float64 `json:"expected_overhead"`
	OverheadLow      float64 `json:"overhead_low"`
	OverheadHigh     float64 `json:"overhead_high"`
	// Exact checks the decoder packet by packet against the losses the channel really dealt
	// (see FECExact).
	Exact FECExact `json:"exact"`
}

// FECExact is a decoder against the losses the channel dealt, packet by packet: which media
// packets of the window went missing on the receiver's wire, which of them the code could
// rebuild from what did arrive, and which the receiver's application got anyway.
type FECExact struct {
	// Packets are the media packets of the window (whole FlexFEC batches; RED packets with
	// all their carriers in it), Lost those missing on the receiver's wire.
	Packets int `json:"packets"`
	Lost    int `json:"lost"`
	// Fixable: lost packets whose repair needs only packets that arrived (FlexFEC: every
	// other packet of their group, the FEC packet included; RED: one of the d packets that
	// repeat them). Recovered: lost packets the application got all the same.
	Fixable   int `json:"fixable"`
	Recovered int `json:"recovered"`
	// Missed are fixable packets the application did not get (the decoder, or what follows
	// it, failed); Unexplained are recovered packets the code could not have rebuilt (the
	// analysis, or the wire tap, is wrong). A correct decoder has both at 0.
	Missed      int `json:"missed"`
	Unexplained int `json:"unexplained"`
}

// FECResult is what MeasureFEC observed.
type FECResult struct {
	Case FECCase `json:"case"`
	// Start and End bound the window (virtual time).
	Start, End time.Time `json:"-"`
	// Channel is the forward direction's datagram counts over the window.
	ChannelOffered int64   `json:"channel_offered"`
	ChannelDropped int64   `json:"channel_dropped"`
	ChannelLoss    float64 `json:"channel_loss"`
	// ModelLoss is the loss model's stationary loss rate, Correlation its lag-1
	// autocorrelation of losses (see lossModelStats).
	ModelLoss   float64   `json:"model_loss"`
	Correlation float64   `json:"correlation"`
	Audio       FECStream `json:"audio"`
	Video       FECStream `json:"video"`
	// NACKs and Retransmissions on the measured direction over the window (the receiver's
	// NACKs, the sender's retransmissions): zero when NACK is off, as the case wants.
	NACKs           int `json:"nacks"`
	Retransmissions int `json:"retransmissions"`
	// SRTPTag is the bytes SRTP adds to each RTP packet, taken off the wire sizes.
	SRTPTag int `json:"srtp_tag"`
	// Client is the client's repair counters at the snapshot (whole call); Gateway the
	// gateway's /metrics counters that moved during the window.
	Client  rtc.RepairStats    `json:"client"`
	Gateway map[string]float64 `json:"gateway"`
}

// MeasureFEC places one WebRTC -> SIP call in w (built from c.WorldConfig()) with RED Opus and
// FlexFEC-protected VP8 both ways and NACK off, lets it run fecWarmup, measures c.Duration of
// media, waits fecSettle and analyses the forward stream of each kind at its receiver: the
// phone's audio log and a tap of the phone's video socket for ClientToGateway (the gateway
// decoded RED and FlexFEC; its counters say how many packets it rebuilt), the client's
// receive log for GatewayToClient (the client decoded; its log marks the rebuilt packets).
// Taps of the client's ICE sockets and of the gateway's WebRTC ones give the overheads (on the
// sender's wire) and the exact check (on the receiver's: FECExact).
func MeasureFEC(w *World, c FECCase) (FECResult, error) {
	c = c.withDefaults()
	res := FECResult{Case: c}
	res.ModelLoss, res.Correlation = lossModelStats(c.Loss)
	ctx, cancel := context.WithTimeout(w.Context(), c.Duration+time.Minute)
	defer cancel()
	v, ok := fecGatewayWires.LoadAndDelete(w.Host(HostGateway).Net)
	if !ok {
		return res, errors.New("scenario: MeasureFEC needs a world built from FECCase.WorldConfig (its tap of the gateway's sockets)")
	}
	gwWire := v.(*fecWire)

	clientRate, phoneRate := c.VideoBitrate, fecReverseBitrate
	if c.Path == GatewayToClient {
		clientRate, phoneRate = fecReverseBitrate, c.VideoBitrate
	}
	tap := &arqTapNet{Net: w.Host(HostPhone).Net, limit: 1 << 20}
	phone, err := w.fecPhone(tap, DefaultSetupPhone, sipphone.Video("VP8", phoneRate, c.FPS))
	if err != nil {
		return res, err
	}
	phone.OnIncoming(func(in *sipphone.Incoming) { _, _ = in.Answer() })
	wire := &fecWire{Net: w.Host(HostClient).Net, limit: fecWireLimit}
	cl, err := w.NewClient(DefaultSetupClient, func(cfg *webclient.Config) {
		cfg.Video, cfg.Codecs, cfg.Net = true, []string{"opus"}, wire
	},
		webclient.WithVideo(clientRate, c.FPS, 0),
		webclient.WithRED(c.REDDistance), webclient.WithFlexFEC(c.FECMediaPackets, c.FECPackets),
		webclient.WithRTC(func(rc *rtc.Config) { rc.NACKSkipLastN = fecNoNACK }))
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
	if s := pc.Media().Stats(); !strings.EqualFold(s.Codec, "opus") {
		return res, fmt.Errorf("scenario: the phone's call runs %q, not Opus", s.Codec)
	}
	pts, err := fecPayloadTypes(call)
	if err != nil {
		return res, err
	}
	time.Sleep(fecWarmup)

	fwd := w.Host(HostClient).Netem.Up
	if c.Path == GatewayToClient {
		fwd = w.Host(HostClient).Netem.Down
	}
	ch0, gw0, cl0 := fwd.Stats(), scrapeGatewayMetrics(w), call.Stats().Repair
	res.Start = time.Now()
	time.Sleep(c.Duration)
	res.End = time.Now()
	ch1, gw1, cl1 := fwd.Stats(), scrapeGatewayMetrics(w), call.Stats().Repair
	time.Sleep(fecSettle)

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
	gwDelta := func(name string) int {
		k := fmt.Sprintf(`siprtc_webrtc_repairs_total{type="%s"}`, name)
		return int(gw1[k] - gw0[k])
	}

	sent, recv := call.Packets()
	var audioLog, videoLog []arqRecv
	var audioRecovered, videoRecovered int
	switch c.Path {
	case ClientToGateway:
		res.NACKs = gwDelta("nacks_sent")
		res.Retransmissions = int(cl1.Retransmissions - cl0.Retransmissions)
		audioLog = phoneRecv(pc.Media().Received())
		videoLog = tap.received(pc.Media().Stats().Video.LocalAddr.Port())
		audioRecovered, videoRecovered = gwDelta("red_recovered"), gwDelta("flexfec_recovered")
	case GatewayToClient:
		res.NACKs = int(cl1.NACKsSent - cl0.NACKsSent)
		res.Retransmissions = gwDelta("retransmissions")
		audioLog, videoLog = clientRecv(recv, "audio"), clientRecv(recv, "video")
	}
	if res.Audio, err = fecReceiverStats(c, "audio", 48000, audioLog, res); err != nil {
		return res, err
	}
	if res.Video, err = fecReceiverStats(c, "video", 90000, videoLog, res); err != nil {
		return res, err
	}
	if c.Path == GatewayToClient {
		audioRecovered, videoRecovered = res.Audio.Receiver.Repaired.RED, res.Video.Receiver.Repaired.FEC
	}
	fecRecovery(c, &res.Audio, audioRecovered, res)
	fecRecovery(c, &res.Video, videoRecovered, res)

	// The realized losses, on the receiver's wire, against what its application got.
	var audioGot, videoGot func(seq uint16) bool
	rxWire := gwWire.packets(false, time.Time{}, time.Time{})
	switch c.Path {
	case ClientToGateway:
		// The phone got what the gateway forwarded, renumbered by a constant offset.
		audioGot = fecForwarded(rxWire, pts.red, audioLog)
		videoGot = fecForwarded(rxWire, pts.vp8, videoLog)
	case GatewayToClient:
		rxWire = wire.packets(false, time.Time{}, time.Time{})
		audioGot, videoGot = fecRepairedIn(recv, "audio", webclient.RepairRED), fecRepairedIn(recv, "video", webclient.RepairFEC)
	}
	res.Audio.Exact = fecExactAudio(c, rxWire, pts, res.Start, res.End, audioGot)
	if res.Video.Exact, err = fecExactVideo(c, rxWire, pts, res.Start, res.End, videoGot); err != nil {
		return res, err
	}

	// Overheads, on the sender's wire: the client's for ClientToGateway, the gateway's for
	// GatewayToClient (the SRTP tag comes from the client's wire and logs: one session).
	primary := 0
	if c.Path == ClientToGateway {
		primary = opusPayloadSize(pc.Media().Received(), nil)
	} else {
		primary = opusPayloadSize(nil, pc.Media().Sent())
	}
	if res.SRTPTag, err = srtpTag(wire.packets(c.Path == ClientToGateway, time.Time{}, time.Time{}), sent, recv, c.Path, pts.vp8); err != nil {
		return res, err
	}
	txWire := wire.packets(true, res.Start, res.End)
	if c.Path == GatewayToClient {
		txWire = gwWire.packets(true, res.Start, res.End)
	}
	if err := fecVideoOverhead(c, &res.Video, txWire, pts, res.SRTPTag); err != nil {
		return res, err
	}
	if err := fecAudioOverhead(c, &res.Audio, txWire, pts, res.SRTPTag, primary); err != nil {
		return res, err
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

// fecReceiverStats analyses the window of one stream and fills in the residual's bound.
func fecReceiverStats(c FECCase, kind string, clock int, log []arqRecv, res FECResult) (FECStream, error) {
	st := FECStream{Kind: kind, ClockRate: clock}
	recv := arqWindow(log, res.Start, res.End)
	if len(recv) == 0 {
		return st, fmt.Errorf("scenario: no %s received in the window", kind)
	}
	var err error
	st.Receiver, err = metrics.AnalyzeStream(recv, nil, metrics.StreamOptions{ClockRate: clock})
	if err != nil {
		return st, err
	}
	st.Residual = st.Receiver.LossRate
	if kind == "audio" {
		st.Theory = redTheory(c.Loss, c.REDDistance)
	} else {
		st.Theory = flexTheory(c.Loss, c.FECMediaPackets, c.FECPackets)
	}
	st.SampleSize = fecSample(c, kind, st.Receiver.Expected, st.Theory)
	st.Bound = metrics.UpperBound(st.Theory, st.SampleSize, metrics.Z99)
	return st, nil
}

// fecRecovery fills in what the decoder rebuilt against what the code can rebuild of the
// channel's losses.
//
// Given the losses the channel dealt to the stream's media packets (ChannelLost: rebuilt or
// still missing), each is rebuildable with probability Fixable: under Bernoulli loss p, the
// other packets of its repair set all arrived, so Fixable = 1 - residual(p)/p (FlexFEC:
// (1/N)·Σ_j n_j(1-p)^n_j; RED: 1 - p^d), taken at the rate the channel dealt in the window so
// that a draw heavier than the model's does not count against the decoder. Under
// Gilbert-Elliott it is the model's lower bound 1 - bound/π (see fecGEResidual). The
// rebuildable losses of different repair sets are independent, those of one set exclusive
// (a single parity rebuilds one packet), so the count is at least as concentrated as a
// binomial: Recovered must reach ChannelLost times the 99.9% Wilson lower limit of Fixable over
// ChannelLost trials (over the effective number of trials under Gilbert-Elliott, whose losses
// come in bursts). 99.9%: the check is about the channel's draw (FECExact checks the decoder
// itself), the suite makes a few dozen such checks per run, and CI must not cry wolf.
func fecRecovery(c FECCase, st *FECStream, recovered int, res FECResult) {
	st.Recovered = recovered
	st.ChannelLost = recovered + st.Receiver.Lost
	st.PreFECLoss = arqRatio(float64(st.ChannelLost), float64(st.Receiver.Expected))
	residual := func(p float64) float64 {
		if st.Kind == "audio" {
			return fec.REDResidualLoss(p, c.REDDistance)
		}
		return fec.FlexFECResidualLoss(p, c.FECMediaPackets, c.FECPackets)
	}
	switch c.Loss.Kind {
	case netem.LossBernoulli:
		if p := res.ChannelLoss; p > 0 {
			st.Fixable = 1 - residual(p)/p
		} else {
			st.Fixable = 1
		}
		st.RecoverySample = st.ChannelLost
	case netem.LossGilbertElliott:
		if pi, _ := lossModelStats(c.Loss); pi > 0 {
			st.Fixable = max(0, 1-st.Theory/pi)
		}
		st.RecoverySample = effectiveSample(st.ChannelLost, geLossAfter(c.Loss, 1))
	}
	st.RecoveredMin = float64(st.ChannelLost) * metrics.LowerBound(st.Fixable, st.RecoverySample, metrics.Z999)
}

// fecSample is the number of independent packets the residual loss of n protected packets is
// worth for its Wilson limit.
//
// FlexFEC: residual losses come in clusters, one repair set (n_j media packets and their FEC
// packet) at a time: when a set fails, all its lost media packets stay lost. Sets are
// independent under Bernoulli loss and a set leaves at most m = ceil(N/K) packets missing, so
// the variance of the residual count is Σ Var(R_set) <= Σ E[R_set²] <= m·Σ E[R_set] = m·n·r,
// against the binomial n·r(1-r): the sample is worth n(1-r)/m packets.
//
// RED: packet s stays missing when s and its d carriers s+1..s+d are all lost, so the residual
// indicators of s and s+k (k <= d) are correlated through shared losses: their lag-k
// correlation is at most p^k, and a sum of n indicators with lag-k correlation ρ^k has at most
// (1+ρ)/(1-ρ) times the binomial variance: n(1-p)/(1+p) packets (effectiveSample).
//
// Gilbert-Elliott: losses are correlated besides, at link lag m by at most q(m) (the chance
// that a packet m after a lost one is lost, see geLossAfter), and the packets of one stream are
// at least one link packet apart: the sample is further divided by (1+q(1))/(1-q(1)).
func fecSample(c FECCase, kind string, n int, theory float64) int {
	if kind == "video" {
		m := (c.FECMediaPackets + c.FECPackets - 1) / c.FECPackets
		n = max(int(float64(n)*(1-theory)/float64(m)), 1)
	} else if c.Loss.Kind == netem.LossBernoulli {
		n = effectiveSample(n, c.Loss.Rate)
	}
	if c.Loss.Kind == netem.LossGilbertElliott {
		n = effectiveSample(n, geLossAfter(c.Loss, 1))
	}
	return n
}

// ---- the realized losses ----

// fecMainSSRC is the SSRC most packets of payload type pt have.
func fecMainSSRC(wire []wirePacket, pt uint8) uint32 {
	count := map[uint32]int{}
	var best uint32
	for _, p := range wire {
		if p.pt == pt {
			if count[p.ssrc]++; count[p.ssrc] > count[best] {
				best = p.ssrc
			}
		}
	}
	return best
}

// fecExactVideo checks FlexFEC on the receiver's wire (rx: every RTP datagram it received, in
// arrival order) for the batches whose media packets all belong to the window (the media
// packets that arrived within [start, end] span it). got says whether the application got a
// media packet.
//
// The batches are found from the arrival order: the sender writes a batch's K FEC packets
// right after its last media packet, so a FEC packet that follows a media packet is, but for
// losses, FEC packet 0 of the batch that media packet ends. Each such pair votes for an
// alignment (where batches start in the media numbering, which FEC sequence number is packet
// 0 of which batch); the losses make the wrong votes a small minority.
func fecExactVideo(c FECCase, rx []wirePacket, pts fecPTs, start, end time.Time, got func(uint16) bool) (FECExact, error) {
	var out FECExact
	n, k := int64(c.FECMediaPackets), int64(c.FECPackets)
	ssrc := fecMainSSRC(rx, pts.vp8)
	type arrival struct {
		fec bool
		ext int64
	}
	var order []arrival
	media, fecs := map[int64]bool{}, map[int64]bool{}
	var mu, fu arqUnwrapper
	lo, hi := int64(math.MaxInt64), int64(math.MinInt64)
	for _, p := range rx {
		switch {
		case p.pt == pts.vp8 && p.ssrc == ssrc:
			x := mu.ext(p.seq)
			media[x] = true
			order = append(order, arrival{false, x})
			if !p.at.Before(start) && !p.at.After(end) {
				lo, hi = min(lo, x), max(hi, x)
			}
		case p.pt == pts.flexfec:
			x := fu.ext(p.seq)
			fecs[x] = true
			order = append(order, arrival{true, x})
		}
	}
	type alignment struct{ mediaStart, fec0 int64 } // batch 0's first media packet and FEC packet 0
	votes := map[alignment]int{}
	for i := 1; i < len(order); i++ {
		if order[i].fec && !order[i-1].fec {
			first := order[i-1].ext - n + 1
			b := floorDiv(first, n)
			votes[alignment{first - b*n, order[i].ext - b*k}]++
		}
	}
	var a alignment
	most := 0
	for al, v := range votes {
		if v > most || (v == most && (al.mediaStart < a.mediaStart || (al.mediaStart == a.mediaStart && al.fec0 < a.fec0))) {
			a, most = al, v
		}
	}
	if most == 0 || lo > hi {
		return out, errors.New("scenario: no FlexFEC batch on the receiver's wire")
	}
	for b := floorDiv(lo-a.mediaStart+n-1, n); a.mediaStart+b*n+n-1 <= hi; b++ {
		first := a.mediaStart + b*n
		for j := int64(0); j < k; j++ {
			var missing []int64
			for i := j; i < n; i += k {
				out.Packets++
				if !media[first+i] {
					missing = append(missing, first+i)
				}
			}
			fixable := len(missing) == 1 && fecs[a.fec0+b*k+j]
			out.add(missing, fixable, got)
		}
	}
	return out, nil
}

// fecExactAudio checks RED on the receiver's wire: a packet missing there can be rebuilt when
// one of the d packets after it arrived (each repeats it).
func fecExactAudio(c FECCase, rx []wirePacket, pts fecPTs, start, end time.Time, got func(uint16) bool) FECExact {
	var out FECExact
	ssrc := fecMainSSRC(rx, pts.red)
	present := map[int64]bool{}
	var u arqUnwrapper
	lo, hi := int64(math.MaxInt64), int64(math.MinInt64)
	for _, p := range rx {
		if p.pt != pts.red || p.ssrc != ssrc {
			continue
		}
		x := u.ext(p.seq)
		present[x] = true
		if !p.at.Before(start) && !p.at.After(end) {
			lo, hi = min(lo, x), max(hi, x)
		}
	}
	d := int64(c.REDDistance)
	for s := lo; s <= hi-d; s++ {
		out.Packets++
		if present[s] {
			continue
		}
		fixable := false
		for i := int64(1); i <= d; i++ {
			fixable = fixable || present[s+i]
		}
		out.add([]int64{s}, fixable, got)
	}
	return out
}

// add counts the missing packets of one repair set.
func (e *FECExact) add(missing []int64, fixable bool, got func(uint16) bool) {
	for _, x := range missing {
		e.Lost++
		rec := got(uint16(x))
		if rec {
			e.Recovered++
		}
		switch {
		case fixable:
			e.Fixable++
			if !rec {
				e.Missed++
			}
		case rec:
			e.Unexplained++
		}
	}
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// fecRepairedIn says whether the client's receive log has a packet of kind repaired by
// repair.
func fecRepairedIn(recv []webclient.PacketRecord, kind, repair string) func(uint16) bool {
	set := map[uint16]bool{}
	for _, r := range recv {
		if r.Kind == kind && r.Repaired == repair {
			set[r.Seq] = true
		}
	}
	return func(seq uint16) bool { return set[seq] }
}

// fecForwarded says whether the phone got a packet of the gateway's receive wire (its packets
// of payload type pt): the gateway renumbers a source's sequence numbers and timestamps by
// constant offsets, found as the offsets most pairs of a wire packet and a phone packet that
// arrived within 5 ms after it agree on (the links beyond the client's have no delay).
func fecForwarded(rx []wirePacket, pt uint8, phone []arqRecv) func(uint16) bool {
	type offset struct {
		seq uint16
		ts  uint32
	}
	votes := map[offset]int{}
	j := 0
	var wire []wirePacket
	for _, p := range rx {
		if p.pt == pt {
			wire = append(wire, p)
		}
	}
	for _, r := range phone {
		for j < len(wire) && wire[j].at.Before(r.at.Add(-5*time.Millisecond)) {
			j++
		}
		for i := j; i < len(wire) && !wire[i].at.After(r.at); i++ {
			votes[offset{r.seq - wire[i].seq, r.ts - wire[i].ts}]++
		}
	}
	var off offset
	most := 0
	for o, v := range votes {
		if v > most || (v == most && (o.seq < off.seq || (o.seq == off.seq && o.ts < off.ts))) {
			off, most = o, v
		}
	}
	set := map[uint16]bool{}
	for _, r := range phone {
		set[r.seq-off.seq] = true
	}
	return func(seq uint16) bool { return most > 0 && set[seq] }
}

// ---- theory ----

// flexTheory is the loss FlexFEC with numMedia media and numFEC FEC packets per batch leaves
// under l: fec.FlexFECResidualLoss for Bernoulli loss, fecGEResidual's bound for
// Gilbert-Elliott.
func flexTheory(l netem.LossModel, numMedia, numFEC int) float64 {
	switch l.Kind {
	case netem.LossBernoulli:
		return fec.FlexFECResidualLoss(l.Rate, numMedia, numFEC)
	case netem.LossGilbertElliott:
		return fecGEResidual(l, flexRepairSets(numMedia, numFEC))
	}
	return 0
}

// redTheory is the loss RED with the given distance leaves under l: fec.REDResidualLoss for
// Bernoulli loss, the Gilbert-Elliott bound π·q(1)^d (see fecGEResidual).
func redTheory(l netem.LossModel, distance int) float64 {
	switch l.Kind {
	case netem.LossBernoulli:
		return fec.REDResidualLoss(l.Rate, distance)
	case netem.LossGilbertElliott:
		pi, _ := lossModelStats(l)
		return pi * math.Pow(geLossAfter(l, 1), float64(distance))
	}
	return 0
}

// flexRepairSets describes pion's FlexFEC code in stream positions: for each media packet i
// of a batch (0..N-1), the positions of the other packets its repair needs. FEC packet j
// protects the media packets i with i mod K = j and leaves right after the batch's last media
// packet, FEC packet j at position N+j.
func flexRepairSets(numMedia, numFEC int) [][]int {
	sets := make([][]int, numMedia)
	for i := range numMedia {
		j := i % numFEC
		for o := j; o < numMedia; o += numFEC {
			if o != i {
				sets[i] = append(sets[i], o)
			}
		}
		sets[i] = append(sets[i], numMedia+j)
	}
	return sets
}

// fecGEResidual bounds the loss a repair code leaves under Gilbert-Elliott loss, the code
// given as the stream positions each media packet's repair needs (sets[i] for packet i of a
// period of len(sets) packets).
//
// Packet i stays missing when it is lost and so is at least one packet of its repair set. A
// packet lost, the state then is at worst bad, and a packet m link packets later is lost with
// probability at most q(m) (geLossAfter); between two packets of one stream at stream
// positions a and b the link carries at least |b-a| packets (the other streams interleave),
// and q decreases with m, so by the union bound
//
//	P(i missing) <= π · min(1, Σ_{o in sets[i]} q(|o - i|))
//
// with π the stationary loss rate (a stationary two-state chain is reversible: the bound holds
// for repair packets before i too). The residual is at most the mean over the period. For RED
// the d carriers of packet s follow it one by one: all lost with probability at most
// π·q(1)^d (redTheory; the Markov property chains the conditional losses).
//
// The bound is loose by design: bursts defeat single-parity codes (with pion's 5+2 code a
// media packet and the FEC packet that protects it can be adjacent on the link), and the
// bound says how much FEC can be trusted to repair under any interleaving.
func fecGEResidual(l netem.LossModel, sets [][]int) float64 {
	if len(sets) == 0 {
		return 0
	}
	pi, _ := lossModelStats(l)
	var sum float64
	for i, set := range sets {
		var fail float64
		for _, o := range set {
			fail += geLossAfter(l, fecAbs(o-i))
		}
		sum += pi * min(1, fail)
	}
	return sum / float64(len(sets))
}

func fecAbs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// geLossAfter is, under Gilbert-Elliott loss, the most a packet m link packets after a lost
// one can be lost with probability: the lost one's state was at worst bad, and m packets later
// the chain is still bad with probability π_B + π_G·|λ|^m (λ = 1-P-R), so
// q(m) = LossBad·s + LossGood·(1-s) with s = π_B + π_G·|λ|^m (as in arqResidual).
func geLossAfter(l netem.LossModel, m int) float64 {
	if l.Kind != netem.LossGilbertElliott {
		return 0
	}
	if l.P+l.R == 0 {
		return l.LossGood
	}
	piB := l.P / (l.P + l.R)
	piG := 1 - piB
	stayBad := piB + piG*math.Pow(math.Abs(1-l.P-l.R), float64(m))
	return l.LossBad*stayBad + l.LossGood*(1-stayBad)
}

// ---- overheads on the sender's wire ----

// fecPTs are the negotiated payload types the wire log is sorted by.
type fecPTs struct {
	red, flexfec, vp8 uint8
}

// fecPayloadTypes reads the negotiated red, flexfec-03 and VP8 payload types from the client's
// remote description (pion answers with the offerer's types: they are the same both ways).
func fecPayloadTypes(call *webclient.Call) (fecPTs, error) {
	var out fecPTs
	pc := call.PeerConnection()
	if pc == nil || pc.RemoteDescription() == nil {
		return out, errors.New("scenario: the client's call has no remote description")
	}
	var desc sdp.SessionDescription
	if err := desc.UnmarshalString(pc.RemoteDescription().SDP); err != nil {
		return out, err
	}
	for _, m := range desc.MediaDescriptions {
		for _, codec := range rtc.CodecsOf(m) {
			switch {
			case m.MediaName.Media == "audio" && strings.EqualFold(codec.Name, "red") && out.red == 0:
				out.red = codec.PayloadType
			case m.MediaName.Media == "video" && strings.EqualFold(codec.Name, "flexfec-03") && out.flexfec == 0:
				out.flexfec = codec.PayloadType
			case m.MediaName.Media == "video" && strings.EqualFold(codec.Name, "VP8") && out.vp8 == 0:
				out.vp8 = codec.PayloadType
			}
		}
	}
	if out.red == 0 || out.flexfec == 0 || out.vp8 == 0 {
		return out, fmt.Errorf("scenario: the gateway's answer lacks red, flexfec-03 or VP8 (payload types %+v)", out)
	}
	return out, nil
}

// opusPayloadSize is the most common audio payload size of the phone's received (or sent) log:
// the Opus frame size, constant in the lab.
func opusPayloadSize(recv []sipphone.PacketRecord, sent []sipphone.SentRecord) int {
	count := map[int]int{}
	for _, r := range recv {
		count[r.PayloadSize]++
	}
	for _, r := range sent {
		if r.Kind == "audio" {
			count[r.PayloadSize]++
		}
	}
	return fecMode(count)
}

func fecMode(count map[int]int) int {
	best, n := 0, 0
	for v, c := range count {
		if c > n || (c == n && v < best) {
			best, n = v, c
		}
	}
	return best
}

// srtpTag is how many bytes SRTP adds to an RTP packet (the authentication tag): the most
// common difference between a VP8 packet's size on the wire and in the client's log (sent log
// for ClientToGateway, received log for GatewayToClient; packets not repaired).
func srtpTag(wire []wirePacket, sent, recv []webclient.PacketRecord, path MediaPath, vp8 uint8) (int, error) {
	type key struct {
		ssrc uint32
		seq  uint16
	}
	size := map[key]int{}
	log := recv
	if path == ClientToGateway {
		log = sent
	}
	for _, r := range log {
		if r.Kind == "video" && r.Repaired == "" && r.PayloadType == vp8 {
			size[key{r.SSRC, r.Seq}] = r.Size
		}
	}
	count := map[int]int{}
	for _, p := range wire {
		if s, ok := size[key{p.ssrc, p.seq}]; ok && p.pt == vp8 {
			count[p.size-s]++
		}
	}
	if len(count) == 0 {
		return 0, errors.New("scenario: no video packet of the client's log on its wire")
	}
	return fecMode(count), nil
}

// fecVideoOverhead: FlexFEC bytes against VP8 bytes on the sender's wire.
//
// Band. A FlexFEC packet is its own RTP header, the FlexFEC-03 header and the XOR of what
// follows the fixed 12-byte header of the packets it protects, padded to the longest: at
// least as large as each packet it protects, at most the largest of them plus
// fecHeaderSlack. K of them follow every N media packets, so a window of M consecutive media
// packets (mean size S, largest S_max) holds K·floor(M/N) to K·ceil(M/N) FEC packets, and
// over many batches of a stationary stream (the mean of a maximum is at least the mean) the
// ratio lies in [K·floor(M/N)/M, K·ceil(M/N)·(S_max + fecHeaderSlack)/(M·S)]: K/N to
// K/N·(S_max + fecHeaderSlack)/S but for one batch at the window's edges.
func fecVideoOverhead(c FECCase, st *FECStream, wire []wirePacket, pts fecPTs, tag int) error {
	largest := 0
	for _, p := range wire {
		switch p.pt {
		case pts.vp8:
			st.MediaPackets++
			st.MediaBytes += int64(p.size - tag)
			largest = max(largest, p.size-tag)
		case pts.flexfec:
			st.RepairPackets++
			st.RepairBytes += int64(p.size - tag)
		}
	}
	if st.MediaPackets == 0 {
		return errors.New("scenario: no VP8 packet on the sender's wire in the window")
	}
	n, k, m := c.FECMediaPackets, c.FECPackets, st.MediaPackets
	st.Overhead = arqRatio(float64(st.RepairBytes), float64(st.MediaBytes))
	st.ExpectedOverhead = float64(k) / float64(n)
	st.OverheadLow = float64(k*(m/n)) / float64(m)
	st.OverheadHigh = float64(k*((m+n-1)/n)) * float64(largest+fecHeaderSlack) / float64(st.MediaBytes)
	return nil
}

// fecAudioOverhead: RED's redundancy against its primary frames on the sender's wire.
//
// Band. With Opus frames of F bytes, a RED packet repeating d earlier frames carries a 1-byte
// primary header, d 4-byte block headers, the d frames and the primary: F + 1 + d(F+4) bytes
// of payload, of which F are the primary. Its redundancy is (1 + d(F+4))/F = d + (1+4d)/F
// times the primary: below d a frame is missing, above a block too many.
func fecAudioOverhead(c FECCase, st *FECStream, wire []wirePacket, pts fecPTs, tag, primary int) error {
	if primary <= 0 {
		return errors.New("scenario: no Opus frame size in the phone's log")
	}
	for _, p := range wire {
		if p.pt != pts.red {
			continue
		}
		payload := p.size - p.header - tag
		st.RepairPackets++
		st.MediaBytes += int64(primary)
		st.RepairBytes += int64(payload - primary)
	}
	if st.RepairPackets == 0 {
		return errors.New("scenario: no RED packet on the sender's wire in the window")
	}
	st.MediaPackets = st.RepairPackets
	st.PrimarySize = primary
	d, f := float64(c.REDDistance), float64(primary)
	st.Overhead = arqRatio(float64(st.RepairBytes), float64(st.MediaBytes))
	st.ExpectedOverhead = d + (1+4*d)/f
	st.OverheadLow = d
	// The same figure computed from integers: no rounding can put a correct encoder above.
	st.OverheadHigh = st.ExpectedOverhead * (1 + 1e-9)
	return nil
}

// ---- the wire taps ----

// wirePacket is one SRTP datagram a tapped host sent or received: its RTP header is in the
// clear.
type wirePacket struct {
	at     time.Time
	sent   bool
	ssrc   uint32
	seq    uint16
	ts     uint32
	pt     uint8
	header int // RTP header length, extensions included
	size   int // the datagram: header, encrypted payload, SRTP tag
}

// fecWire is a transport.Net that logs the RTP datagrams its UDP sockets send and receive
// (pion's ICE reads and writes them with ReadFrom and WriteTo): what really crosses the
// client's link, RED framing and FlexFEC packets included, which no peer's log shows (the
// client's sees neither the FEC packets it receives nor the RED packets it decodes, the
// gateway keeps none), and on the receiving side exactly which packets the channel took.
type fecWire struct {
	transport.Net
	limit int

	mu  sync.Mutex
	log []wirePacket
}

func (n *fecWire) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := n.Net.ListenUDP(network, laddr)
	if err != nil {
		return nil, err
	}
	return &fecWireConn{UDPConn: c, n: n}, nil
}

type fecWireConn struct {
	transport.UDPConn
	n *fecWire
}

func (c *fecWireConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, addr, err := c.UDPConn.ReadFrom(b)
	if err == nil {
		c.n.record(false, b[:n])
	}
	return n, addr, err
}

func (c *fecWireConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	n, err := c.UDPConn.WriteTo(b, addr)
	if err == nil {
		c.n.record(true, b)
	}
	return n, err
}

func (n *fecWire) record(sent bool, b []byte) {
	// RTP version 2, and not RTCP (payload types 192-223 with the marker bit: RFC 5761).
	if len(b) < 12 || b[0]>>6 != 2 || (b[1] >= 192 && b[1] <= 223) {
		return
	}
	var h rtp.Header
	hl, err := h.Unmarshal(b)
	if err != nil {
		return
	}
	p := wirePacket{at: time.Now(), sent: sent, ssrc: h.SSRC, seq: h.SequenceNumber, ts: h.Timestamp, pt: h.PayloadType, header: hl, size: len(b)}
	n.mu.Lock()
	if len(n.log) < n.limit {
		n.log = append(n.log, p)
	}
	n.mu.Unlock()
}

// packets returns the datagrams sent (or received) within [start, end] (zero times: all of
// them), in the order they crossed the socket.
func (n *fecWire) packets(sent bool, start, end time.Time) []wirePacket {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []wirePacket
	for _, p := range n.log {
		if p.sent == sent && (start.IsZero() || !p.at.Before(start)) && (end.IsZero() || !p.at.After(end)) {
			out = append(out, p)
		}
	}
	return out
}

// ---- the phone ----

// fecPhone starts an Opus-only SIP phone for a directory user on the phone host, its sockets
// opened through n (a wrapper of the host's Net), and registers it.
func (w *World) fecPhone(n transport.Net, user string, opts ...sipphone.Option) (*sipphone.Phone, error) {
	h := w.hosts[HostPhone]
	pw, ok := w.pbx.Password(user)
	if !ok {
		return nil, fmt.Errorf("scenario: %s is not a directory user of the PBX", user)
	}
	ph, err := sipphone.New(sipphone.Config{
		Net: n, LocalIP: h.IP, User: user, Password: pw, Domain: w.pbx.Domain(),
		Registrar: w.pbx.SIPAddr(), Support100rel: true, Codecs: []string{"opus"},
		Logger: w.log.With("who", "phone "+user),
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
