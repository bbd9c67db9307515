package scenario

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/siprtc/siprtc/gateway"
	"github.com/siprtc/siprtc/gateway/rtc"
	"github.com/siprtc/siprtc/lab/metrics"
	"github.com/siprtc/siprtc/lab/netem"
	"github.com/siprtc/siprtc/lab/peers/sipphone"
	"github.com/siprtc/siprtc/lab/peers/webclient"
)

// BWEDirection is which way the measured media crosses the bottleneck.
type BWEDirection string

// The directions of a BWE run.
const (
	// BWEUplink: the WebRTC client sends video to a SIP phone through the gateway; the
	// bottleneck is the client's uplink and the client's gcc (send-side BWE, fed by the TWCC
	// feedback the gateway returns) is the congestion controller under test.
	BWEUplink BWEDirection = "client->gateway"
	// BWEDownlink: the SIP phone sends video to the client through the gateway; the bottleneck
	// is the client's downlink. The gateway forwards what the phone sends and runs no
	// congestion control toward the client (it stamps no transport-wide sequence numbers, so
	// the client returns no TWCC; it neither estimates nor relays an estimate to the SIP side),
	// and the phone does not adapt: this direction is open loop, and a run measures what the
	// path does to a fixed-rate stream (delivered rate, queue delay, loss).
	BWEDownlink BWEDirection = "gateway->client"
)

// The host names RFC 8867 scenario files use: the forward path is the sender's uplink, the
// backward path its downlink. BWECase maps them onto the world (see BWECase.Config).
const (
	RoleSender   = "sender"
	RoleReceiver = "receiver"
)

// Defaults of BWECase's zero fields.
const (
	// DefaultBWEInterval is the sampling period (RFC 8868 suggests per-100 ms rates).
	DefaultBWEInterval = 100 * time.Millisecond
	// DefaultBWEMaxVideo is the encoder's maximum: above every capacity of the RFC 8867 cases
	// here (4 Mbps shared by two flows at most), so that a flow is always network-limited and
	// utilization measures the congestion controller, never the source. The reference
	// implementation of the RFC 8867 cases (ns-3 rmcat) stops its source at 1.5 Mbps; ours
	// goes higher on purpose.
	DefaultBWEMaxVideo = 3_000_000
	// DefaultBWEPhoneVideo is the SIP phone's video when it is not the measured flow: the
	// smallest frames the synthetic encoder makes (about 10 kbit/s on the wire). The phone must
	// send some video for the call to carry the client's.
	DefaultBWEPhoneVideo = 1
	// DefaultBWEDownlinkVideo is the phone's video in the downlink direction.
	DefaultBWEDownlinkVideo = 1_500_000
	// DefaultBWESettle is how long after an epoch's rate first reached the capacity (see
	// BWEEpoch.Reached) its steady part starts.
	DefaultBWESettle = 5 * time.Second
	// DefaultBWETolerance is the convergence band's half-width (fraction of the capacity), on
	// 1 s means of the offered rate: GCC's own sawtooth (a decrease to 0.85 of the received
	// rate, then increase) spans about 0.72-1.0 of the capacity.
	DefaultBWETolerance = 0.25
	// DefaultBWEHold is how long the rate must stay in the band to count as converged.
	DefaultBWEHold = 3 * time.Second
	// BWEBin is the averaging of the offered rate the epoch's times are judged on (Reached,
	// Reaction, Convergence): per-100 ms rates swing with every frame and key frame.
	BWEBin = time.Second
	// BWEReachLow and BWEReachHigh bound "at the capacity" for BWEEpoch.Reached and Reaction
	// (fractions of the capacity).
	BWEReachLow, BWEReachHigh = 0.75, 1.1
	// BWEMinSteady is the shortest steady part measured.
	BWEMinSteady = 5 * time.Second
	// BWEVideoFPS is the clients' frame rate.
	BWEVideoFPS = 30
	// DefaultBWENACKRetries makes the lab client, and the gateway, NACK like a browser:
	// libwebrtc's NACK requester asks for a packet at most 10 times (kMaxNackRetries). Both
	// default to pion's generator, which asks until the packet leaves its 1024-packet receive
	// log: the client's multiplies the gateway's retransmissions on a congested downlink
	// several times over, and the gateway's keeps NACKing for tens of seconds after a capacity
	// drop, which in about a third of the RFC 8867 5.1 runs drives the client's gcc loss
	// controller to its 100 kbit/s floor for some 10 s on a link that no longer drops anything
	// (measured: 5/20, 5/14 and 6/16 runs; 1/16 with the gateway capped at 10).
	DefaultBWENACKRetries = 10
)

// wireOverhead is what a datagram adds to a rate counted in UDP payload bytes on its way
// through a netem capacity (IPv4 + UDP, as netem counts it).
const wireOverhead = 28

// BWEFlow is one call of a run: a WebRTC client (users 1005, 1006, ...) calling a SIP phone
// (1010, 1011, ...), video and audio. Times count from the run's start (see MeasureBWE).
type BWEFlow struct {
	// Start is when the call is placed; 0 places it before the run starts.
	Start time.Duration
	// Stop hangs the call up; 0 keeps it to the end.
	Stop time.Duration
	// Pauses stop the flow's video encoder for a while (RFC 8867 section 5.8): the video
	// track is taken off its sender and put back, as a browser muting its camera does; audio
	// goes on.
	Pauses []BWEPause
}

// BWEPause is one pause of a flow's video: from At to Resume.
type BWEPause struct {
	At, Resume time.Duration
}

// BWECase is one BWE run: a network scenario, who sends which way, the flows and their
// timeline, and how the client estimates.
type BWECase struct {
	// Name names the run in reports ("rfc8867-5.1").
	Name string
	// Scenario is the network. Its host RoleSender is the media sender's side of the path
	// (its uplink is the forward path, its downlink the backward path), RoleReceiver the
	// other side; other hosts must be named after the world's. Uplink maps the sender onto
	// the client and the receiver onto the gateway; Downlink maps the forward path onto the
	// client's downlink (the sender's up and down swap) and the receiver onto the gateway.
	Scenario *netem.Scenario
	// Direction is BWEUplink (default) or BWEDownlink.
	Direction BWEDirection
	// Duration is how long the run lasts from its start; 0 means Scenario.Duration.
	Duration time.Duration
	// Flows are the calls; nil is one call for the whole run.
	Flows []BWEFlow
	// BWE configures the clients' estimators (rtc's defaults for zero fields). Uplink only.
	BWE rtc.BWEConfig
	// FixedVideo, when > 0, turns the clients' estimation off and sends video at this bitrate:
	// the open-loop reference the bands of a BWE spec must reject.
	FixedVideo int
	// MaxVideo is the clients' encoder maximum (DefaultBWEMaxVideo when 0).
	MaxVideo int
	// PhoneVideo is the phones' video bitrate (DefaultBWEPhoneVideo uplink,
	// DefaultBWEDownlinkVideo downlink): the backward media of RFC 8867 section 5.3, the
	// measured flow downlink. The phone does not adapt.
	PhoneVideo int
	// Interval is the sampling period (DefaultBWEInterval when 0).
	Interval time.Duration
	// Settle is how long after an epoch first reached its capacity its steady part starts
	// (DefaultBWESettle).
	Settle time.Duration
	// Tolerance is the convergence band (DefaultBWETolerance), Hold how long the rate must
	// stay in it (DefaultBWEHold).
	Tolerance float64
	Hold      time.Duration
	// NACKRetries is how many times a client asks for one lost packet (DefaultBWENACKRetries
	// when 0; negative: pion's default, as long as the packet is in the receive log).
	NACKRetries int
	// GatewayNACKRetries is the same for the gateway's NACK generator, set by Config
	// (DefaultBWENACKRetries when 0; negative: the gateway's default, pion's unlimited one).
	GatewayNACKRetries int
	// ClientOptions are added to every client's options (after the case's own).
	ClientOptions []webclient.Option
	// Opus makes the calls' audio Opus end to end: the clients offer it first and the phones
	// take nothing else (by default the audio is PCMU). RED (webclient.WithRED, with the
	// gateway's [media] red=1) needs it.
	Opus bool
}

// BWEResult is what a run measured. Rates are bit/s. Aggregate rates are the bottleneck's, on
// the wire (IP and UDP headers included, as capacities are); per-flow rates are RTP (header
// and payload) as the peers count them.
type BWEResult struct {
	Case      string        `json:"case"`
	Direction BWEDirection  `json:"direction"`
	Start     time.Time     `json:"start"`
	Duration  time.Duration `json:"duration_ns"`
	Interval  time.Duration `json:"interval_ns"`
	Settle    time.Duration `json:"settle_ns"`
	// Aggregate is the bottleneck every Interval: Target the sum of the active flows' gcc
	// targets, Sending what the sender host offered to the bottleneck, Delivered what left it,
	// Capacity its rate, QueueDelay the mean time packets spent in its queue during the
	// interval. Each sample covers [At, At+Interval).
	Aggregate []metrics.Sample `json:"aggregate"`
	// Reverse is the backward direction (the feedback path) likewise; its Target is 0.
	Reverse []metrics.Sample `json:"reverse"`
	Flows   []BWEFlowResult  `json:"flows"`
	// Epochs cut the run at every capacity change and every flow event.
	Epochs []BWEEpoch `json:"epochs"`
	// Total is the aggregate over the whole run.
	Total metrics.BWEStats `json:"total"`
	// FirstReached is when the offered rate first reached the capacity (the first epoch's
	// From+Reached that did); ReachedOK false if it never did. AfterReach is the aggregate
	// from Settle after it to the end: the run without its initial ramp.
	FirstReached time.Duration    `json:"first_reached_ns"`
	ReachedOK    bool             `json:"reached_ok"`
	AfterReach   metrics.BWEStats `json:"after_reach"`
	// QueueDelay and ReverseQueueDelay are netem's per-packet queue delays of both
	// directions since the network started (the call set-up included).
	QueueDelay        netem.Distribution `json:"queue_delay_packets"`
	ReverseQueueDelay netem.Distribution `json:"reverse_queue_delay_packets"`
	// Loss and ReverseLoss are the queue drops of the run.
	Loss        BWELoss `json:"loss"`
	ReverseLoss BWELoss `json:"reverse_loss"`
	// Gateway are the gateway's WebRTC-leg counters over the run (its /metrics
	// siprtc_webrtc_repairs_total): the TWCC feedback it returned, the NACKs it got and the
	// retransmissions it sent.
	Gateway BWEGatewayCounters `json:"gateway"`
}

// BWEGatewayCounters are gateway counters over a run.
type BWEGatewayCounters struct {
	TWCCFeedbackSent uint64 `json:"twcc_feedback_sent"`
	NACKsReceived    uint64 `json:"nacks_received"`
	NACKsSent        uint64 `json:"nacks_sent"`
	Retransmissions  uint64 `json:"retransmissions"`
}

// BWELoss counts datagrams dropped by a bottleneck's queue during a run.
type BWELoss struct {
	Offered int64   `json:"offered"`
	Dropped int64   `json:"dropped"`
	Rate    float64 `json:"rate"`
}

// BWEEstimate is a flow's estimator at one moment (bit/s; At since the run's start).
type BWEEstimate struct {
	At          time.Duration `json:"at_ns"`
	Target      int           `json:"target_bps"`
	LossTarget  int           `json:"loss_target_bps"`
	DelayTarget int           `json:"delay_target_bps"`
	Loss        float64       `json:"loss"`
	State       string        `json:"state"`
	Usage       string        `json:"usage"`
	Threshold   time.Duration `json:"threshold_ns"`
}

// BWEFlowResult is one flow of a run.
type BWEFlowResult struct {
	Client string `json:"client"`
	Phone  string `json:"phone"`
	// Start and Stop are the flow's planned times; Connected when its PeerConnection
	// connected, since the run's start (negative: before it).
	Start     time.Duration `json:"start_ns"`
	Stop      time.Duration `json:"stop_ns"`
	Connected time.Duration `json:"connected_ns"`
	Pauses    []BWEPause    `json:"pauses,omitempty"`
	// Samples: Target the client's gcc target, Sending the client's RTP rate as it left the
	// pacer (retransmissions included), Delivered the receiver's RTP rate (audio and video,
	// after the gateway and the PBX), Capacity the flow's fair share of the bottleneck
	// (capacity / active flows), QueueDelay the bottleneck's.
	Samples []metrics.Sample `json:"samples"`
	// Stats are over the flow's active time.
	Stats metrics.BWEStats `json:"stats"`
	// Estimator is the client's gcc state every second (WithBWE): its two controllers'
	// estimates, the loss it averages and its rate controller's state, since the run's start.
	Estimator []BWEEstimate `json:"estimator,omitempty"`
	// PhonePackets and ClientPackets are the RTP packets (audio and video) the phone and the
	// client sent during the call, retransmissions aside.
	PhonePackets  uint64 `json:"phone_packets"`
	ClientPackets uint64 `json:"client_packets"`
	// VideoFramesSent and KeyFrames are the client's encoder output.
	VideoFramesSent uint64 `json:"video_frames_sent"`
	KeyFramesSent   uint64 `json:"key_frames_sent"`
}

// BWEEpoch is a stretch of a run with one capacity and one set of active flows. Its times
// count from its start and are judged on BWEBin means of the bottleneck's offered rate.
type BWEEpoch struct {
	From     time.Duration `json:"from_ns"`
	To       time.Duration `json:"to_ns"`
	Capacity float64       `json:"capacity_bps"` // 0: unlimited
	// Previous is the capacity of the epoch before (0 for the first).
	Previous float64 `json:"previous_capacity_bps"`
	Active   []int   `json:"active"` // flows whose video was on
	// Before is the offered rate over the BWEBin before the epoch (over its first BWEBin for
	// the first epoch): where its ramp starts from.
	Before float64 `json:"before_bps"`
	// All is the aggregate over the epoch.
	All metrics.BWEStats `json:"all"`
	// Reached is when the offered rate first lay within [BWEReachLow, BWEReachHigh] of the
	// capacity; Reaction when it first was at most BWEReachHigh of it (after a decrease, how
	// long the sender kept overdriving the bottleneck). ReachedOK and ReactedOK are false if
	// it never did.
	Reached   time.Duration `json:"reached_ns"`
	ReachedOK bool          `json:"reached_ok"`
	Reaction  time.Duration `json:"reaction_ns"`
	ReactedOK bool          `json:"reacted_ok"`
	// Convergence is metrics.ConvergenceTime of the offered rate to the capacity (Tolerance,
	// Hold); Converged false if it never converged within the epoch.
	Convergence time.Duration `json:"convergence_ns"`
	Converged   bool          `json:"converged"`
	// Steady is the aggregate over [From+Reached+Settle, To], when that is at least
	// BWEMinSteady long (SteadyFrom is then its start; zero otherwise).
	SteadyFrom time.Duration    `json:"steady_from_ns"`
	Steady     metrics.BWEStats `json:"steady"`
	// FlowRates are the active flows' mean delivered rates over the steady part (their mean
	// sending rates in FlowSending), and Jain the fairness index of FlowRates (RFC 8868
	// self-fairness); 0 with fewer than two flows.
	FlowRates   []float64 `json:"flow_rates_bps"`
	FlowSending []float64 `json:"flow_sending_bps"`
	Jain        float64   `json:"jain"`
}

// ModuleRoot returns the directory of the siprtc module that contains the working directory.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("scenario: not inside the siprtc module (no go.mod above the working directory)")
		}
		dir = parent
	}
}

// RFC8867Sections are the RFC 8867 test cases the lab runs, in order.
var RFC8867Sections = []string{"5.1", "5.2", "5.3", "5.4", "5.8"}

// RFC8867 returns the case of RFC 8867 section (5.1, 5.2, 5.3, 5.4 or 5.8) in direction dir:
// the network from fixtures/scenarios/rfc8867-<section>.yaml, the flows' timeline from the
// RFC (section 4 and 5):
//
//   - 5.1 variable available capacity, single flow: one flow for 100 s;
//   - 5.2 variable available capacity, multiple flows: two flows from 0 s for 125 s (the calls
//     are placed one after the other, about half a second apart);
//   - 5.3 congested feedback link with bidirectional media: one flow each way for 100 s; the
//     backward one is the SIP phone's video at 1 Mbit/s, which does not adapt (the phone has
//     no congestion control), so the feedback link is congested from 35 to 70 s;
//   - 5.4 competing flows with the same congestion control: three flows starting at 0, 20 and
//     40 s, 120 s;
//   - 5.8 media pause and resume: three flows from 0 s, the second's video paused from 40 to
//     60 s, 120 s.
func RFC8867(section string, dir BWEDirection) (BWECase, error) {
	root, err := ModuleRoot()
	if err != nil {
		return BWECase{}, err
	}
	s, err := netem.LoadScenario(filepath.Join(root, "fixtures", "scenarios", "rfc8867-"+section+".yaml"))
	if err != nil {
		return BWECase{}, err
	}
	c := BWECase{Name: s.Name, Scenario: s, Direction: dir}
	switch section {
	case "5.1":
	case "5.2":
		c.Flows = []BWEFlow{{}, {}}
	case "5.3":
		c.PhoneVideo = 1_000_000
	case "5.4":
		c.Flows = []BWEFlow{{}, {Start: 20 * time.Second}, {Start: 40 * time.Second}}
	case "5.8":
		c.Flows = []BWEFlow{{}, {Pauses: []BWEPause{{At: 40 * time.Second, Resume: 60 * time.Second}}}, {}}
	default:
		return BWECase{}, fmt.Errorf("scenario: RFC 8867 section %q is not one the lab runs (%s)", section, strings.Join(RFC8867Sections, ", "))
	}
	return c, nil
}

// WithDefaults returns c with its zero fields set to their defaults.
func (c BWECase) WithDefaults() BWECase { return c.withDefaults() }

func (c BWECase) withDefaults() BWECase {
	if c.Direction == "" {
		c.Direction = BWEUplink
	}
	if c.Duration == 0 && c.Scenario != nil {
		c.Duration = c.Scenario.Duration
	}
	if c.Flows == nil {
		c.Flows = []BWEFlow{{}}
	}
	if c.MaxVideo == 0 {
		c.MaxVideo = DefaultBWEMaxVideo
	}
	if c.PhoneVideo == 0 {
		c.PhoneVideo = DefaultBWEPhoneVideo
		if c.Direction == BWEDownlink {
			c.PhoneVideo = DefaultBWEDownlinkVideo
		}
	}
	if c.Interval == 0 {
		c.Interval = DefaultBWEInterval
	}
	if c.NACKRetries == 0 {
		c.NACKRetries = DefaultBWENACKRetries
	}
	if c.GatewayNACKRetries == 0 {
		c.GatewayNACKRetries = DefaultBWENACKRetries
	}
	if c.Settle == 0 {
		c.Settle = DefaultBWESettle
	}
	if c.Tolerance == 0 {
		c.Tolerance = DefaultBWETolerance
	}
	if c.Hold == 0 {
		c.Hold = DefaultBWEHold
	}
	if c.Name == "" && c.Scenario != nil {
		c.Name = c.Scenario.Name
	}
	return c
}

// The world's users the flows take: clients from 1005 (the gateway's WebRTC accounts are
// 1005-1009), phones from 1010.
const (
	firstBWEClient = 1005
	firstBWEPhone  = 1010
	maxBWEFlows    = 5
)

func (c BWECase) validate() error {
	if c.Scenario == nil {
		return errors.New("scenario: BWE case without a scenario")
	}
	if c.Direction != BWEUplink && c.Direction != BWEDownlink {
		return fmt.Errorf("scenario: BWE direction %q: want %q or %q", c.Direction, BWEUplink, BWEDownlink)
	}
	if c.Duration <= 0 {
		return fmt.Errorf("scenario: BWE case %s has no duration", c.Name)
	}
	if len(c.Flows) == 0 || len(c.Flows) > maxBWEFlows {
		return fmt.Errorf("scenario: BWE case %s has %d flows: want 1 to %d", c.Name, len(c.Flows), maxBWEFlows)
	}
	for i, f := range c.Flows {
		if f.Start < 0 || f.Start >= c.Duration || (f.Stop != 0 && f.Stop <= f.Start) || f.Stop > c.Duration {
			return fmt.Errorf("scenario: BWE case %s flow %d: start %v stop %v outside the run (%v)", c.Name, i, f.Start, f.Stop, c.Duration)
		}
		for _, p := range f.Pauses {
			if p.At < f.Start || p.Resume <= p.At || p.Resume > c.Duration {
				return fmt.Errorf("scenario: BWE case %s flow %d: pause %v-%v outside the flow", c.Name, i, p.At, p.Resume)
			}
		}
	}
	return nil
}

// Config is the emulated world of the case: its scenario's links on the world's hosts (see
// BWECase.Scenario). The links hold from the world's start; MeasureBWE restarts their
// schedules when the run starts.
func (c BWECase) Config() (Config, error) {
	c = c.withDefaults()
	if err := c.validate(); err != nil {
		return Config{}, err
	}
	cfg := Config{Emulated: true}
	if n := c.GatewayNACKRetries; n > 0 {
		cfg.Gateway = append(cfg.Gateway, gateway.WithRTC(func(rc *rtc.Config) { rc.NACKMaxRetries = uint16(n) }))
	}
	roles := map[string]string{RoleSender: HostClient, RoleReceiver: HostGateway}
	if err := cfg.ApplyScenario(c.oriented(), roles); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// oriented is the scenario with the sender and receiver links swapped for the downlink.
func (c BWECase) oriented() *netem.Scenario {
	if c.Direction != BWEDownlink {
		return c.Scenario
	}
	s := *c.Scenario
	s.Hosts = slices.Clone(s.Hosts)
	for i, h := range s.Hosts {
		if h.Name == RoleSender || h.Name == RoleReceiver {
			s.Hosts[i].Up, s.Hosts[i].Down = h.Down, h.Up
		}
	}
	return &s
}

// RunBWE builds the case's world, runs MeasureBWE in it (in virtual time) and closes it. t is
// the running test (see In).
func RunBWE(t *testing.T, c BWECase) (BWEResult, error) {
	cfg, err := c.Config()
	if err != nil {
		return BWEResult{}, err
	}
	return In(t, cfg, func(w *World) (BWEResult, error) { return MeasureBWE(w, c) })
}

// bweFlow is a flow while it runs.
type bweFlow struct {
	spec   BWEFlow
	user   string // the phone's
	client *webclient.Client
	phone  *sipphone.Phone

	mu        sync.Mutex
	call      *webclient.Call
	phoneCall *sipphone.Call
	connected time.Time
	ended     bool
	err       error
}

func (f *bweFlow) calls() (*webclient.Call, *sipphone.Call) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.call, f.phoneCall
}

// tick is one reading of every counter a run samples.
type bweTick struct {
	at           time.Time
	fwd, rev     netem.DirectionStats
	targets      []int    // per flow (0 without estimator)
	sentBytes    []uint64 // client RTP bytes (payload + 12 per packet), per flow
	recvBytes    []uint64 // receiver RTP bytes, per flow
	videoOn      []bool
	capacity     float64
	revCapacity  float64
	activeVideos int
}

// MeasureBWE runs c in w (an emulated world, normally built from c.Config()): it starts the
// phones and clients of c's flows, places the calls that start at 0, and when they are
// connected starts the run: the scenario's schedules restart from that instant (the links are
// Set again with their phases shifted), the later flows start, pause and stop on time, and
// every Interval the bottleneck (netem's Direction.Stats of the client's uplink, or downlink)
// and every flow (the gcc target, the rates sent and received) are sampled, for c.Duration.
// Then the calls are hung up and the samples turned into RFC 8868 metrics (lab/metrics).
func MeasureBWE(w *World, c BWECase) (BWEResult, error) {
	c = c.withDefaults()
	if err := c.validate(); err != nil {
		return BWEResult{}, err
	}
	nw := w.Network()
	if nw == nil {
		return BWEResult{}, errors.New("scenario: MeasureBWE needs an emulated world")
	}
	client := w.Host(HostClient).Netem
	fwdDir, revDir := client.Up, client.Down
	if c.Direction == BWEDownlink {
		fwdDir, revDir = client.Down, client.Up
	}
	ctx, cancel := context.WithCancel(w.Context())
	defer cancel()

	flows := make([]*bweFlow, len(c.Flows))
	for i, spec := range c.Flows {
		f, err := startBWEFlow(w, c, i, spec)
		if err != nil {
			return BWEResult{}, err
		}
		flows[i] = f
	}
	// The flows that start at 0 are connected before the run starts.
	for _, f := range flows {
		if f.spec.Start == 0 {
			if err := f.place(ctx, w); err != nil {
				return BWEResult{}, err
			}
		}
	}

	// The run starts now: the links' schedules restart from here.
	t0 := time.Now()
	offset := t0.Sub(nw.StartTime())
	s := c.oriented()
	roles := map[string]string{RoleSender: HostClient, RoleReceiver: HostGateway}
	var fwdCfg, revCfg netem.LinkConfig
	for _, h := range s.Hosts {
		name := h.Name
		if r, ok := roles[name]; ok {
			name = r
		}
		host := w.Host(name).Netem
		if host == nil {
			return BWEResult{}, fmt.Errorf("scenario: no host %q in the world", name)
		}
		if err := host.Up.Set(shiftLink(h.Up, offset)); err != nil {
			return BWEResult{}, err
		}
		if err := host.Down.Set(shiftLink(h.Down, offset)); err != nil {
			return BWEResult{}, err
		}
		if name == HostClient {
			fwdCfg, revCfg = h.Up, h.Down
			if c.Direction == BWEDownlink {
				fwdCfg, revCfg = h.Down, h.Up
			}
		}
	}

	gw0 := gatewayCounters(w)

	// Flow events: later starts, pauses, stops.
	var wg sync.WaitGroup
	for _, f := range flows {
		wg.Go(func() { f.run(ctx, w, t0) })
	}

	ticks := make([]bweTick, 0, int(c.Duration/c.Interval)+2)
	take := func(now time.Time) {
		tk := bweTick{at: now, fwd: fwdDir.Stats(), rev: revDir.Stats(),
			capacity:    float64(capacityAt(fwdCfg, now.Sub(t0))),
			revCapacity: float64(capacityAt(revCfg, now.Sub(t0)))}
		for _, f := range flows {
			target, sent, recv, on := f.read(c.Direction)
			tk.targets = append(tk.targets, target)
			tk.sentBytes = append(tk.sentBytes, sent)
			tk.recvBytes = append(tk.recvBytes, recv)
			tk.videoOn = append(tk.videoOn, on)
		}
		ticks = append(ticks, tk)
	}
	take(t0)
	ticker := time.NewTicker(c.Interval)
	end := t0.Add(c.Duration)
	for time.Now().Before(end) {
		select {
		case <-ctx.Done():
			ticker.Stop()
			cancel()
			wg.Wait()
			return BWEResult{}, ctx.Err()
		case now := <-ticker.C:
			take(now)
		}
	}
	ticker.Stop()
	cancel()
	wg.Wait()

	var errs []error
	res := BWEResult{Case: c.Name, Direction: c.Direction, Start: t0, Duration: c.Duration, Interval: c.Interval, Settle: c.Settle}
	for i, f := range flows {
		f.mu.Lock()
		if f.err != nil {
			errs = append(errs, fmt.Errorf("flow %d: %w", i, f.err))
		}
		f.mu.Unlock()
	}
	res.build(c, flows, ticks)
	gw1 := gatewayCounters(w)
	res.Gateway = BWEGatewayCounters{
		TWCCFeedbackSent: gw1.TWCCFeedbackSent - gw0.TWCCFeedbackSent,
		NACKsReceived:    gw1.NACKsReceived - gw0.NACKsReceived,
		NACKsSent:        gw1.NACKsSent - gw0.NACKsSent,
		Retransmissions:  gw1.Retransmissions - gw0.Retransmissions,
	}

	// Hang up what is still up.
	hctx, hcancel := context.WithTimeout(w.Context(), 10*time.Second)
	defer hcancel()
	for _, f := range flows {
		if call, _ := f.calls(); call != nil {
			select {
			case <-call.Done():
			default:
				_ = call.Hangup(hctx, "bwe run over")
			}
		}
	}
	return res, errors.Join(errs...)
}

// startBWEFlow starts flow i's phone and client.
func startBWEFlow(w *World, c BWECase, i int, spec BWEFlow) (*bweFlow, error) {
	phoneUser := fmt.Sprint(firstBWEPhone + i)
	f := &bweFlow{spec: spec, user: phoneUser}
	logLimit := int(c.Duration/c.Interval) + 1000
	// Downlink, the phone's send log gives the flow's sending rate: it must hold the whole run
	// (the phone sends about 50 audio and 25-200 video packets a second).
	phoneLog := 1000
	if c.Direction == BWEDownlink {
		phoneLog = int(c.Duration.Seconds()+60) * 400
	}
	phoneOpts := []sipphone.Option{sipphone.Video("VP8", c.PhoneVideo, 25), sipphone.PacketLogLimit(phoneLog)}
	var ph *sipphone.Phone
	var err error
	if c.Opus {
		ph, err = w.fecPhone(w.Host(HostPhone).Net, phoneUser, phoneOpts...)
	} else {
		ph, err = w.Phone(phoneUser, phoneOpts...)
	}
	if err != nil {
		return nil, err
	}
	f.phone = ph
	opts := []webclient.Option{webclient.WithSeed(uint64(i + 1)), webclient.WithPacketLog(logLimit)}
	switch {
	case c.Direction == BWEDownlink:
		opts = append(opts, webclient.WithVideo(webclient.MinVideoBitrate, BWEVideoFPS, 0))
	case c.FixedVideo > 0:
		opts = append(opts, webclient.WithVideo(c.FixedVideo, BWEVideoFPS, 0))
	default:
		opts = append(opts, webclient.WithVideo(c.MaxVideo, BWEVideoFPS, 0), webclient.WithBWE(c.BWE))
	}
	if c.NACKRetries > 0 {
		opts = append(opts, webclient.WithNACK(0, uint16(c.NACKRetries)))
	}
	opts = append(opts, c.ClientOptions...)
	user := fmt.Sprint(firstBWEClient + i)
	cl, err := w.NewClient(user, func(cfg *webclient.Config) {
		cfg.Video = true
		if c.Opus {
			cfg.Codecs = []string{"opus", "pcmu", "pcma"}
		}
	}, opts...)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(w.Context(), 10*time.Second)
	defer cancel()
	if err := cl.Connect(cctx); err != nil {
		return nil, fmt.Errorf("scenario: client %s: %w", user, err)
	}
	f.client = cl
	return f, nil
}

// place calls the flow's phone and waits until the call is connected and video flows.
func (f *bweFlow) place(ctx context.Context, w *World) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	target := f.user
	call, err := f.client.Call(ctx, target)
	if err != nil {
		return fmt.Errorf("scenario: call %s: %w", target, err)
	}
	f.mu.Lock()
	f.call = call
	f.mu.Unlock()
	if err := call.WaitConnected(ctx); err != nil {
		return fmt.Errorf("scenario: call %s not connected: %w", target, err)
	}
	if err := WaitFor(ctx, 10*time.Second, func() bool { return len(f.phone.Calls()) == 1 }); err != nil {
		return fmt.Errorf("scenario: phone %s has no call: %w", target, err)
	}
	f.mu.Lock()
	f.phoneCall = f.phone.Calls()[0]
	f.connected = call.Stats().Connected
	f.mu.Unlock()
	return nil
}

// run carries out the flow's timeline from t0: start (unless started already), pauses, stop.
func (f *bweFlow) run(ctx context.Context, w *World, t0 time.Time) {
	sleepUntil := func(t time.Time) bool {
		d := time.Until(t)
		if d <= 0 {
			return ctx.Err() == nil
		}
		timer := time.NewTimer(d)
		defer timer.Stop()
		select {
		case <-timer.C:
			return true
		case <-ctx.Done():
			return false
		}
	}
	fail := func(err error) {
		f.mu.Lock()
		if f.err == nil {
			f.err = err
		}
		f.mu.Unlock()
	}
	if f.spec.Start > 0 {
		if !sleepUntil(t0.Add(f.spec.Start)) {
			return
		}
		if err := f.place(ctx, w); err != nil {
			if ctx.Err() == nil {
				fail(err)
			}
			return
		}
	}
	for _, p := range f.spec.Pauses {
		if !sleepUntil(t0.Add(p.At)) {
			return
		}
		call, _ := f.calls()
		track, err := setVideo(call, nil)
		if err != nil {
			fail(fmt.Errorf("pause: %w", err))
			return
		}
		if !sleepUntil(t0.Add(p.Resume)) {
			return
		}
		if _, err := setVideo(call, track); err != nil {
			fail(fmt.Errorf("resume: %w", err))
			return
		}
	}
	if f.spec.Stop > 0 {
		if !sleepUntil(t0.Add(f.spec.Stop)) {
			return
		}
		call, _ := f.calls()
		hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := call.Hangup(hctx, "flow stops"); err != nil && ctx.Err() == nil {
			fail(fmt.Errorf("stop: %w", err))
		}
		f.mu.Lock()
		f.ended = true
		f.mu.Unlock()
	}
}

// setVideo puts track on the call's video sender (nil takes the track off: the client's
// encoder produces nothing while its track is unbound) and returns the track it replaced.
func setVideo(call *webclient.Call, track webrtc.TrackLocal) (webrtc.TrackLocal, error) {
	if call == nil || call.PeerConnection() == nil {
		return nil, errors.New("no call")
	}
	for _, tr := range call.PeerConnection().GetTransceivers() {
		s := tr.Sender()
		if tr.Kind() != webrtc.RTPCodecTypeVideo || s == nil {
			continue
		}
		old := s.Track()
		if track == nil && old == nil {
			return nil, errors.New("video already paused")
		}
		return old, s.ReplaceTrack(track)
	}
	return nil, errors.New("the call has no video sender")
}

// read returns the flow's gcc target, the RTP bytes its sender sent and its receiver got so
// far (header counted as 12 bytes a packet), and whether its video is on.
func (f *bweFlow) read(dir BWEDirection) (target int, sent, recv uint64, videoOn bool) {
	call, pcall := f.calls()
	f.mu.Lock()
	ended := f.ended
	f.mu.Unlock()
	if call == nil {
		return 0, 0, 0, false
	}
	st := call.Stats()
	if b := call.BWE(); b != nil {
		target = b.GetTargetBitrate()
	}
	var ps sipphone.MediaStats
	if pcall != nil {
		ps = pcall.Media().Stats()
	}
	clientSent := st.Audio.BytesSent + 12*st.Audio.PacketsSent + st.Video.BytesSent + 12*st.Video.PacketsSent
	clientRecv := st.Audio.BytesReceived + 12*st.Audio.PacketsReceived + st.Video.BytesReceived + 12*st.Video.PacketsReceived
	phoneRecv := ps.BytesReceived + 12*ps.PacketsReceived + ps.Video.BytesReceived + 12*ps.Video.PacketsReceived
	phoneSent := ps.BytesSent + 12*ps.PacketsSent
	videoOn = !ended
	if pc := call.PeerConnection(); pc != nil && videoOn {
		for _, tr := range pc.GetTransceivers() {
			if s := tr.Sender(); tr.Kind() == webrtc.RTPCodecTypeVideo && s != nil {
				videoOn = s.Track() != nil
			}
		}
	}
	if dir == BWEDownlink {
		return 0, phoneSent, clientRecv, videoOn
	}
	return target, clientSent, phoneRecv, videoOn
}

// shiftLink moves l's schedule and outages later by d: the scenario's time 0 becomes d after
// the network's start.
func shiftLink(l netem.LinkConfig, d time.Duration) netem.LinkConfig {
	l.Schedule = slices.Clone(l.Schedule)
	for i := range l.Schedule {
		l.Schedule[i].At += d
	}
	l.Outages = slices.Clone(l.Outages)
	for i := range l.Outages {
		l.Outages[i].Start += d
	}
	return l
}

// capacityAt is l's capacity at t since the schedule's start (0: unlimited).
func capacityAt(l netem.LinkConfig, t time.Duration) int64 {
	rate := l.Capacity.Rate
	for _, ph := range l.Schedule {
		if ph.At > t {
			break
		}
		if ph.Capacity != nil {
			rate = ph.Capacity.Rate
		}
	}
	return rate
}

// changes are the instants (since the schedule's start) in (0, d) at which l's capacity changes.
func changes(l netem.LinkConfig, d time.Duration) []time.Duration {
	var out []time.Duration
	prev := capacityAt(l, 0)
	for _, ph := range l.Schedule {
		if ph.At <= 0 || ph.At >= d || ph.Capacity == nil {
			continue
		}
		if ph.Capacity.Rate != prev {
			out = append(out, ph.At)
			prev = ph.Capacity.Rate
		}
	}
	return out
}

// build turns the ticks into the result's series and statistics.
func (r *BWEResult) build(c BWECase, flows []*bweFlow, ticks []bweTick) {
	if len(ticks) < 2 {
		return
	}
	// Rates over each interval, stamped at its start.
	wire := func(a, b netem.DirectionStats) (offered, delivered float64, qd time.Duration) {
		offered = float64(b.OfferedBytes-a.OfferedBytes+wireOverhead*(b.OfferedPackets-a.OfferedPackets)) * 8
		delivered = float64(b.DeliveredBytes-a.DeliveredBytes+wireOverhead*(b.DeliveredPackets-a.DeliveredPackets)) * 8
		if n := b.QueueDelay.Count - a.QueueDelay.Count; n > 0 {
			sum := float64(b.QueueDelay.Mean)*float64(b.QueueDelay.Count) - float64(a.QueueDelay.Mean)*float64(a.QueueDelay.Count)
			qd = time.Duration(math.Max(0, sum/float64(n)))
		}
		return offered, delivered, qd
	}
	r.Flows = make([]BWEFlowResult, len(flows))
	for i, f := range flows {
		fr := &r.Flows[i]
		fr.Client, fr.Phone = fmt.Sprint(firstBWEClient+i), fmt.Sprint(firstBWEPhone+i)
		fr.Start, fr.Stop, fr.Pauses = f.spec.Start, f.spec.Stop, f.spec.Pauses
		f.mu.Lock()
		if !f.connected.IsZero() {
			fr.Connected = f.connected.Sub(r.Start)
		}
		f.mu.Unlock()
		call, pcall := f.calls()
		if call != nil {
			st := call.Stats()
			fr.VideoFramesSent, fr.KeyFramesSent = st.Video.FramesSent, st.Video.KeyFramesSent
			fr.ClientPackets = st.Audio.PacketsSent + st.Video.PacketsSent
		}
		if pcall != nil {
			ps := pcall.Media().Stats()
			fr.PhonePackets = ps.PacketsSent + ps.Video.PacketsSent
		}
	}
	for k := 1; k < len(ticks); k++ {
		a, b := ticks[k-1], ticks[k]
		dt := b.at.Sub(a.at).Seconds()
		if dt <= 0 {
			continue
		}
		off, del, qd := wire(a.fwd, b.fwd)
		roff, rdel, rqd := wire(a.rev, b.rev)
		active := 0
		var target float64
		for i := range flows {
			if a.videoOn[i] && b.videoOn[i] {
				active++
			}
			target += float64(b.targets[i])
		}
		r.Aggregate = append(r.Aggregate, metrics.Sample{At: a.at, Target: target, Sending: off / dt, Delivered: del / dt, Capacity: a.capacity, QueueDelay: qd})
		r.Reverse = append(r.Reverse, metrics.Sample{At: a.at, Sending: roff / dt, Delivered: rdel / dt, Capacity: a.revCapacity, QueueDelay: rqd})
		for i := range flows {
			if !(a.videoOn[i] || b.videoOn[i]) && b.sentBytes[i] == a.sentBytes[i] {
				continue // not started yet, or over
			}
			share := a.capacity
			if active > 0 && share > 0 {
				share /= float64(active)
			}
			r.Flows[i].Samples = append(r.Flows[i].Samples, metrics.Sample{
				At: a.at, Target: float64(b.targets[i]),
				Sending:   float64(b.sentBytes[i]-a.sentBytes[i]) * 8 / dt,
				Delivered: float64(b.recvBytes[i]-a.recvBytes[i]) * 8 / dt,
				Capacity:  share, QueueDelay: qd,
			})
		}
	}
	// With an estimator, a flow's sending rate is the client's own meter (BWESample.SendingRate:
	// every RTP packet as it left the pacer, retransmissions included) rather than its media
	// counters.
	for i, f := range flows {
		call, _ := f.calls()
		if call == nil {
			continue
		}
		bs := call.BWESamples()
		if len(bs) == 0 {
			continue
		}
		meter := make([]metrics.Sample, len(bs))
		next := time.Duration(0)
		for j, x := range bs {
			meter[j] = metrics.Sample{At: x.At.Add(-c.Interval), Sending: float64(x.SendingRate)}
			if at := x.At.Sub(r.Start); at >= next {
				r.Flows[i].Estimator = append(r.Flows[i].Estimator, BWEEstimate{At: at, Target: x.Target, LossTarget: x.LossTarget,
					DelayTarget: x.DelayTarget, Loss: x.LossRate, State: x.DelayState, Usage: x.Usage, Threshold: x.DelayThreshold})
				next = at.Truncate(time.Second) + time.Second
			}
		}
		fs := r.Flows[i].Samples
		for k := range fs {
			st := metrics.AnalyzeBWE(meter, metrics.Window{From: fs[k].At, To: fs[k].At.Add(c.Interval)})
			if st.Duration > 0 {
				fs[k].Sending = st.MeanSending
			}
		}
	}
	// Downlink, a flow's sending rate is the phone's RTP rate, from its send log.
	if c.Direction == BWEDownlink {
		for i, f := range flows {
			_, pcall := f.calls()
			fs := r.Flows[i].Samples
			if pcall == nil || len(fs) == 0 {
				continue
			}
			bins := make([]float64, len(fs))
			for _, p := range pcall.Media().Sent() {
				k := sort.Search(len(fs), func(k int) bool { return fs[k].At.After(p.At) }) - 1
				if k >= 0 && p.At.Before(fs[k].At.Add(c.Interval)) {
					bins[k] += float64(p.Size) * 8
				}
			}
			for k := range fs {
				fs[k].Sending = bins[k] / c.Interval.Seconds()
			}
		}
	}
	first, last := ticks[0], ticks[len(ticks)-1]
	r.Total = metrics.AnalyzeBWE(r.Aggregate, metrics.Window{})
	r.QueueDelay, r.ReverseQueueDelay = last.fwd.QueueDelay, last.rev.QueueDelay
	loss := func(a, b netem.DirectionStats) BWELoss {
		l := BWELoss{Offered: b.OfferedPackets - a.OfferedPackets, Dropped: b.DroppedQueue - a.DroppedQueue}
		if l.Offered > 0 {
			l.Rate = float64(l.Dropped) / float64(l.Offered)
		}
		return l
	}
	r.Loss, r.ReverseLoss = loss(first.fwd, last.fwd), loss(first.rev, last.rev)
	for i := range r.Flows {
		r.Flows[i].Stats = metrics.AnalyzeBWE(r.Flows[i].Samples, metrics.Window{})
	}
	r.Epochs = r.epochs(c)
	for _, e := range r.Epochs {
		if e.ReachedOK {
			r.FirstReached, r.ReachedOK = e.From+e.Reached, true
			r.AfterReach = r.Window(r.FirstReached+c.Settle, c.Duration)
			break
		}
	}
}

// epochs cuts the run at capacity changes and flow events, and measures each piece.
func (r *BWEResult) epochs(c BWECase) []BWEEpoch {
	var fwdCfg netem.LinkConfig
	for _, h := range c.oriented().Hosts {
		if h.Name == RoleSender || h.Name == HostClient {
			fwdCfg = h.Up
			if c.Direction == BWEDownlink {
				fwdCfg = h.Down
			}
		}
	}
	cuts := append([]time.Duration{0, c.Duration}, changes(fwdCfg, c.Duration)...)
	for _, f := range c.Flows {
		cuts = append(cuts, f.Start, f.Stop)
		for _, p := range f.Pauses {
			cuts = append(cuts, p.At, p.Resume)
		}
	}
	slices.Sort(cuts)
	cuts = slices.Compact(cuts)
	cuts = slices.DeleteFunc(cuts, func(d time.Duration) bool { return d < 0 || d > c.Duration })
	at := func(d time.Duration) time.Time { return r.Start.Add(d) }
	var out []BWEEpoch
	for k := 0; k+1 < len(cuts); k++ {
		from, to := cuts[k], cuts[k+1]
		e := BWEEpoch{From: from, To: to, Capacity: float64(capacityAt(fwdCfg, from))}
		if k > 0 {
			e.Previous = float64(capacityAt(fwdCfg, cuts[k-1]))
		}
		for i, f := range c.Flows {
			if f.Start <= from && (f.Stop == 0 || f.Stop >= to) && !pausedDuring(f, from, to) {
				e.Active = append(e.Active, i)
			}
		}
		e.All = metrics.AnalyzeBWE(r.Aggregate, metrics.Window{From: at(from), To: at(to)})
		if from == 0 {
			e.Before = metrics.AnalyzeBWE(r.Aggregate, metrics.Window{From: at(0), To: at(BWEBin)}).MeanSending
		} else {
			e.Before = metrics.AnalyzeBWE(r.Aggregate, metrics.Window{From: at(from - BWEBin), To: at(from)}).MeanSending
		}
		// The epoch's offered rate in BWEBin means.
		var in []metrics.Sample
		for _, x := range r.Aggregate {
			if !x.At.Before(at(from)) && x.At.Before(at(to)) {
				in = append(in, x)
			}
		}
		bins := metrics.Resample(in, BWEBin).Samples()
		if e.Capacity > 0 {
			for i, b := range bins {
				t := time.Duration(i) * BWEBin
				if !e.ReactedOK && b.Sending <= BWEReachHigh*e.Capacity {
					e.Reaction, e.ReactedOK = t, true
				}
				if !e.ReachedOK && b.Sending >= BWEReachLow*e.Capacity && b.Sending <= BWEReachHigh*e.Capacity {
					e.Reached, e.ReachedOK = t, true
				}
			}
			e.Convergence, e.Converged = metrics.ConvergenceTime(bins, at(from),
				metrics.ConvergenceOptions{Reference: e.Capacity, Tolerance: c.Tolerance, Hold: c.Hold, Rate: metrics.RateSending})
		}
		if e.ReachedOK && to-(from+e.Reached+c.Settle) >= BWEMinSteady {
			e.SteadyFrom = from + e.Reached + c.Settle
			w := metrics.Window{From: at(e.SteadyFrom), To: at(to)}
			e.Steady = metrics.AnalyzeBWE(r.Aggregate, w)
			for _, i := range e.Active {
				st := metrics.AnalyzeBWE(r.Flows[i].Samples, w)
				e.FlowRates = append(e.FlowRates, st.MeanDelivered)
				e.FlowSending = append(e.FlowSending, st.MeanSending)
			}
			if len(e.FlowRates) >= 2 {
				e.Jain = metrics.Jain(e.FlowRates)
			}
		}
		out = append(out, e)
	}
	return out
}

// pausedDuring reports whether a pause of f overlaps [from, to).
func pausedDuring(f BWEFlow, from, to time.Duration) bool {
	for _, p := range f.Pauses {
		if p.At < to && p.Resume > from {
			return true
		}
	}
	return false
}

// Epoch returns the epoch that contains t (since the run's start), and false if none does.
func (r BWEResult) Epoch(t time.Duration) (BWEEpoch, bool) {
	i := sort.Search(len(r.Epochs), func(i int) bool { return r.Epochs[i].To > t })
	if i == len(r.Epochs) || r.Epochs[i].From > t {
		return BWEEpoch{}, false
	}
	return r.Epochs[i], true
}

// Window returns the aggregate statistics over [from, to] since the run's start.
func (r BWEResult) Window(from, to time.Duration) metrics.BWEStats {
	return metrics.AnalyzeBWE(r.Aggregate, metrics.Window{From: r.Start.Add(from), To: r.Start.Add(to)})
}

// FlowWindow returns flow i's statistics over [from, to] since the run's start.
func (r BWEResult) FlowWindow(i int, from, to time.Duration) metrics.BWEStats {
	return metrics.AnalyzeBWE(r.Flows[i].Samples, metrics.Window{From: r.Start.Add(from), To: r.Start.Add(to)})
}

// Series is the aggregate resampled at step for charts (target vs capacity vs delivered, with
// queue delay), and each flow's likewise.
type BWESeries struct {
	Aggregate metrics.Series   `json:"aggregate"`
	Reverse   metrics.Series   `json:"reverse"`
	Flows     []metrics.Series `json:"flows"`
}

// Series resamples the run's samples at step (the Interval when 0).
func (r BWEResult) Series(step time.Duration) BWESeries {
	if step == 0 {
		step = r.Interval
	}
	s := BWESeries{Aggregate: metrics.Resample(r.Aggregate, step), Reverse: metrics.Resample(r.Reverse, step)}
	for _, f := range r.Flows {
		s.Flows = append(s.Flows, metrics.Resample(f.Samples, step))
	}
	return s
}

// gatewayCounters reads the gateway's WebRTC-leg repair counters from its /metrics (live
// calls and ended ones).
func gatewayCounters(w *World) BWEGatewayCounters {
	m := scrapeGatewayMetrics(w)
	get := func(name string) uint64 { return uint64(m[`siprtc_webrtc_repairs_total{type="`+name+`"}`]) }
	return BWEGatewayCounters{TWCCFeedbackSent: get("twcc_feedback_sent"), NACKsReceived: get("nacks_received"),
		NACKsSent: get("nacks_sent"), Retransmissions: get("retransmissions")}
}

// GCCIncrease is GCC's largest multiplicative increase of its rate per second
// (draft-ietf-rmcat-gcc-02 section 5.5: η = 1.08; pion's gcc uses the same).
const GCCIncrease = 1.08

// GCCRampTime is how long a rate takes to grow from `from` to `to` bit/s at GCCIncrease per
// second: ln(to/from)/ln(1.08); 0 when to <= from (or from <= 0).
func GCCRampTime(from, to float64) time.Duration {
	if from <= 0 || to <= from {
		return 0
	}
	return time.Duration(math.Log(to/from) / math.Log(GCCIncrease) * float64(time.Second))
}

// BWEDetail is what reports chart and tabulate of a run: the time series (columnar, every
// Interval: target vs capacity vs sending and delivered, with the queue delay) and the
// statistics, without the raw samples.
type BWEDetail struct {
	Case       string             `json:"case"`
	Direction  BWEDirection       `json:"direction"`
	Duration   time.Duration      `json:"duration_ns"`
	Series     BWESeries          `json:"series"`
	Epochs     []BWEEpoch         `json:"epochs"`
	Flows      []BWEFlowResult    `json:"flows"` // Samples left out: they are in Series
	Total      metrics.BWEStats   `json:"total"`
	AfterReach metrics.BWEStats   `json:"after_reach"`
	Loss       BWELoss            `json:"loss"`
	Reverse    BWELoss            `json:"reverse_loss"`
	Gateway    BWEGatewayCounters `json:"gateway"`
	Queue      netem.Distribution `json:"queue_delay_packets"`
	RevQueue   netem.Distribution `json:"reverse_queue_delay_packets"`
}

// Detail returns the run's BWEDetail.
func (r BWEResult) Detail() BWEDetail {
	d := BWEDetail{Case: r.Case, Direction: r.Direction, Duration: r.Duration, Series: r.Series(0), Epochs: r.Epochs,
		Total: r.Total, AfterReach: r.AfterReach, Loss: r.Loss, Reverse: r.ReverseLoss, Gateway: r.Gateway, Queue: r.QueueDelay, RevQueue: r.ReverseQueueDelay}
	for _, f := range r.Flows {
		f.Samples = nil
		d.Flows = append(d.Flows, f)
	}
	return d
}
