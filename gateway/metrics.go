package gateway

import (
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/siprtc/siprtc/gateway/call"
	"github.com/siprtc/siprtc/gateway/media"
	"github.com/siprtc/siprtc/gateway/sipua"
)

// setupBuckets are the upper bounds (seconds) of the call setup time histogram.
var setupBuckets = []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// metrics holds the counters of ended calls; live calls are added at scrape time.
type metrics struct {
	mu       sync.Mutex
	outcomes map[[2]string]uint64 // direction, outcome
	setup    map[string]*histogram
	ended    mediaTotals
}

type histogram struct {
	counts []uint64 // per bucket, not cumulative
	count  uint64
	sum    float64
}

func (h *histogram) observe(v float64) {
	if h.counts == nil {
		h.counts = make([]uint64, len(setupBuckets))
	}
	for i, b := range setupBuckets {
		if v <= b {
			h.counts[i]++
			break
		}
	}
	h.count++
	h.sum += v
}

// mediaTotals sums media counters by leg and kind.
type mediaTotals struct {
	legs   map[[2]string]media.LegStats // leg, kind -> sums
	repair map[string]uint64
}

func (t *mediaTotals) add(s media.Stats) {
	if t.legs == nil {
		t.legs = map[[2]string]media.LegStats{}
		t.repair = map[string]uint64{}
	}
	for kind, st := range map[string]media.StreamStats{"audio": s.Audio, "video": s.Video} {
		if !st.Active {
			continue
		}
		for leg, ls := range map[string]media.LegStats{"webrtc": st.WebRTC, "sip": st.SIP} {
			k := [2]string{leg, kind}
			sum := t.legs[k]
			sum.Received += ls.Received
			sum.Sent += ls.Sent
			sum.Lost += ls.Lost
			sum.Late += ls.Late
			sum.Duplicates += ls.Duplicates
			sum.Dropped += ls.Dropped
			sum.Repaired += ls.Repaired
			sum.Recovered += ls.Recovered
			sum.DTMFReceived += ls.DTMFReceived
			sum.DTMFSent += ls.DTMFSent
			t.legs[k] = sum
		}
	}
	r := s.Repair
	for name, v := range map[string]uint64{
		"nacks_sent": r.NACKsSent, "nacks_received": r.NACKsReceived, "nacked_packets_sent": r.NACKedSent,
		"nacked_packets_received": r.NACKedReceived, "retransmissions": r.Retransmissions, "rtx_sent": r.RTXSent,
		"rtx_received": r.RTXReceived, "plis_sent": r.PLIsSent, "plis_received": r.PLIsReceived,
		"firs_sent": r.FIRsSent, "firs_received": r.FIRsReceived, "twcc_feedback_sent": r.TWCCFeedbackSent,
		"red_sent": r.REDSent, "red_received": r.REDReceived, "red_recovered": r.REDRecovered,
		"flexfec_sent": r.FlexFECSent, "flexfec_received": r.FlexFECReceived, "flexfec_recovered": r.FlexFECRecovered,
		"flexfec_unrecoverable": r.FlexFECUnrecoverable,
	} {
		t.repair[name] += v
	}
}

func (t mediaTotals) clone() mediaTotals {
	return mediaTotals{legs: maps.Clone(t.legs), repair: maps.Clone(t.repair)}
}

func newMetrics() *metrics {
	return &metrics{outcomes: map[[2]string]uint64{}, setup: map[string]*histogram{}}
}

func (m *metrics) callAnswered(dir call.Direction, setup time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	h := m.setup[string(dir)]
	if h == nil {
		h = &histogram{}
		m.setup[string(dir)] = h
	}
	h.observe(setup.Seconds())
}

func (m *metrics) callEnded(r call.Record) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.outcomes[[2]string{string(r.Direction), string(r.Outcome)}]++
	m.ended.add(r.Media)
}

// ServeMetrics writes /metrics in the Prometheus text exposition format (0.0.4).
func (g *Gateway) serveMetrics(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	g.writeMetrics(w)
}

func (g *Gateway) writeMetrics(w io.Writer) {
	var (
		totals mediaTotals
		active int
	)
	g.calls.Observe(func(live []*call.Call) {
		g.metrics.mu.Lock()
		totals = g.metrics.ended.clone()
		g.metrics.mu.Unlock()
		active = len(live)
		for _, c := range live {
			totals.add(c.Stats())
		}
	})
	g.metrics.mu.Lock()
	outcomes := maps.Clone(g.metrics.outcomes)
	setup := map[string]histogram{}
	for k, h := range g.metrics.setup {
		setup[k] = histogram{counts: slices.Clone(h.counts), count: h.count, sum: h.sum}
	}
	g.metrics.mu.Unlock()

	p := &promWriter{w: w}
	p.family("siprtc_up", "gauge", "1 while the gateway runs.")
	p.sample("siprtc_up", nil, 1)

	p.family("siprtc_sip_registrations", "gauge", "SIP accounts by registration state.")
	byState := map[string]int{}
	for _, st := range []sipua.RegState{sipua.Unregistered, sipua.Registering, sipua.Registered, sipua.RegistrationFailed} {
		byState[st.String()] = 0
	}
	for _, r := range g.ua.Registrations() {
		byState[r.State.String()]++
	}
	for _, st := range sortedKeys(byState) {
		p.sample("siprtc_sip_registrations", labels{"state", st}, float64(byState[st]))
	}

	p.family("siprtc_active_calls", "gauge", "Calls in progress.")
	p.sample("siprtc_active_calls", nil, float64(active))

	p.family("siprtc_calls_total", "counter", "Ended calls by direction and outcome.")
	keys := slices.SortedFunc(maps.Keys(outcomes), func(a, b [2]string) int { return strings.Compare(a[0]+a[1], b[0]+b[1]) })
	for _, k := range keys {
		p.sample("siprtc_calls_total", labels{"direction", k[0], "outcome", k[1]}, float64(outcomes[k]))
	}

	p.family("siprtc_call_setup_seconds", "histogram", "Time from invite to answer of answered calls.")
	for _, dir := range sortedKeys(setup) {
		h := setup[dir]
		var cum uint64
		for i, b := range setupBuckets {
			if h.counts != nil {
				cum += h.counts[i]
			}
			p.sample("siprtc_call_setup_seconds_bucket", labels{"direction", dir, "le", formatFloat(b)}, float64(cum))
		}
		p.sample("siprtc_call_setup_seconds_bucket", labels{"direction", dir, "le", "+Inf"}, float64(h.count))
		p.sample("siprtc_call_setup_seconds_sum", labels{"direction", dir}, h.sum)
		p.sample("siprtc_call_setup_seconds_count", labels{"direction", dir}, float64(h.count))
	}

	legKeys := slices.SortedFunc(maps.Keys(totals.legs), func(a, b [2]string) int { return strings.Compare(a[0]+a[1], b[0]+b[1]) })
	counter := func(name, help string, get func(media.LegStats) float64) {
		p.family(name, "counter", help)
		for _, k := range legKeys {
			p.sample(name, labels{"leg", k[0], "kind", k[1]}, get(totals.legs[k]))
		}
	}
	counter("siprtc_media_packets_received_total", "RTP packets the bridge read from each leg.", func(s media.LegStats) float64 { return float64(s.Received) })
	counter("siprtc_media_packets_sent_total", "RTP packets the bridge wrote to each leg.", func(s media.LegStats) float64 { return float64(s.Sent) })
	counter("siprtc_media_packets_lost_total", "RTP packets lost on each leg after repair (RFC 3550 cumulative loss).", func(s media.LegStats) float64 { return float64(max(s.Lost, 0)) })
	counter("siprtc_media_packets_late_total", "RTP packets that arrived after a newer one (retransmissions, reordering).", func(s media.LegStats) float64 { return float64(s.Late) })
	counter("siprtc_media_packets_repaired_total", "RTP packets recovered through the client's RTX stream.", func(s media.LegStats) float64 { return float64(s.Repaired) })
	counter("siprtc_media_packets_recovered_total", "RTP packets rebuilt from the client's RED (audio) or FlexFEC (video) packets.", func(s media.LegStats) float64 { return float64(s.Recovered) })
	counter("siprtc_media_packets_dropped_total", "RTP packets not forwarded (format the other leg lacks, stale source, duplicate).", func(s media.LegStats) float64 { return float64(s.Dropped) })
	counter("siprtc_media_dtmf_received_total", "RFC 4733 events detected on each leg.", func(s media.LegStats) float64 { return float64(s.DTMFReceived) })

	p.family("siprtc_webrtc_repairs_total", "counter", "NACK, retransmission, key-frame request, feedback, RED and FlexFEC packets on the WebRTC leg.")
	for _, name := range sortedKeys(totals.repair) {
		p.sample("siprtc_webrtc_repairs_total", labels{"type", name}, float64(totals.repair[name]))
	}

	s := g.sig.Metrics().Snapshot()
	p.family("siprtc_signaling_connections", "gauge", "Open signalling WebSocket connections.")
	p.sample("siprtc_signaling_connections", nil, float64(s.Connections))
	p.family("siprtc_signaling_sessions", "gauge", "Logged-in signalling sessions.")
	p.sample("siprtc_signaling_sessions", nil, float64(s.Sessions))
	p.family("siprtc_signaling_login_failures_total", "counter", "Refused logins (bad or expired token).")
	p.sample("siprtc_signaling_login_failures_total", nil, float64(s.LoginFailures))
	p.family("siprtc_signaling_errors_total", "counter", "Error replies to clients by code.")
	for _, code := range sortedKeys(s.Errors) {
		p.sample("siprtc_signaling_errors_total", labels{"code", string(code)}, float64(s.Errors[code]))
	}
}

type labels []string // name, value, name, value...

// promWriter writes the text exposition format.
type promWriter struct{ w io.Writer }

func (p *promWriter) family(name, typ, help string) {
	fmt.Fprintf(p.w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
}

func (p *promWriter) sample(name string, l labels, v float64) {
	var b strings.Builder
	b.WriteString(name)
	if len(l) > 0 {
		b.WriteByte('{')
		for i := 0; i+1 < len(l); i += 2 {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(l[i])
			b.WriteString(`="`)
			b.WriteString(escapeLabel(l[i+1]))
			b.WriteByte('"')
		}
		b.WriteByte('}')
	}
	b.WriteByte(' ')
	b.WriteString(formatFloat(v))
	b.WriteByte('\n')
	_, _ = io.WriteString(p.w, b.String())
}

func escapeLabel(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

func formatFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

func sortedKeys[K ~string, V any](m map[K]V) []K {
	out := make([]K, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
