package metrics

import (
	"encoding/json"
	"math"
	"testing"
	"time"
)

func TestSetupIntervals(t *testing.T) {
	s := Setup{
		Invite:           at(0),
		OK200:            at(ms(120)),
		Connected:        at(ms(300)),
		FirstMediaWebRTC: at(ms(350)),
	}
	check := func(name string, f func() (time.Duration, bool), want time.Duration, wantOK bool) {
		t.Helper()
		d, ok := f()
		if d != want || ok != wantOK {
			t.Errorf("%s = %v, %v; want %v, %v", name, d, ok, want, wantOK)
		}
	}
	check("InviteTo200", s.InviteTo200, ms(120), true)
	check("InviteToConnected", s.InviteToConnected, ms(300), true)
	check("InviteToFirstMediaWebRTC", s.InviteToFirstMediaWebRTC, ms(350), true)
	check("InviteToFirstMediaSIP", s.InviteToFirstMediaSIP, 0, false)
	check("no invite", Setup{OK200: at(ms(5))}.InviteTo200, 0, false)
}

func TestSetupJSON(t *testing.T) {
	s := Setup{Invite: at(0), OK200: at(ms(120)), Connected: at(ms(300)), FirstMediaWebRTC: at(ms(350))}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"invite":"2024-03-01T12:00:00Z","ok_200":"2024-03-01T12:00:00.12Z",` +
		`"connected":"2024-03-01T12:00:00.3Z","first_media_webrtc":"2024-03-01T12:00:00.35Z",` +
		`"first_media_sip":"0001-01-01T00:00:00Z","invite_to_200_ns":120000000,` +
		`"invite_to_connected_ns":300000000,"invite_to_first_media_webrtc_ns":350000000,` +
		`"invite_to_first_media_sip_ns":null}`
	if string(b) != want {
		t.Errorf("JSON\n got  %s\n want %s", b, want)
	}
	// Pointers and slices encode the same way.
	if b2, _ := json.Marshal(&s); string(b2) != want {
		t.Errorf("pointer JSON differs: %s", b2)
	}
	var back Setup
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !back.Invite.Equal(s.Invite) || !back.OK200.Equal(s.OK200) || !back.FirstMediaWebRTC.Equal(s.FirstMediaWebRTC) ||
		!back.FirstMediaSIP.IsZero() {
		t.Errorf("round trip: %+v", back)
	}
}

func TestBound(t *testing.T) {
	b := Bound{RoundTrips: 3, RTT: ms(100), Slack: ms(50)}
	eq(t, "Limit", b.Limit(), ms(350))
	near(t, "Ratio(700ms)", b.Ratio(ms(700)), 2, 1e-12)
	near(t, "Ratio(175ms)", b.Ratio(ms(175)), 0.5, 1e-12)
	eq(t, "Within(350ms)", b.Within(ms(350)), true)
	eq(t, "Within(351ms)", b.Within(ms(351)), false)
	z := Bound{}
	eq(t, "zero Ratio(0)", z.Ratio(0), 0.0)
	eq(t, "zero Ratio(1)", z.Ratio(1), math.Inf(1))
	sameKeys(t, b, "round_trips", "rtt_ns", "slack_ns")
}

func TestSummarizeSetups(t *testing.T) {
	var setups []Setup
	// 200 OK after 100, 300, 200 ms; connected after 400 ms in two calls; the third never
	// connected; no first media at all.
	for i, ok := range []float64{100, 300, 200} {
		s := Setup{Invite: at(time.Duration(i) * time.Second)}
		s.OK200 = s.Invite.Add(ms(ok))
		if i < 2 {
			s.Connected = s.Invite.Add(ms(400 + 100*float64(i)))
		}
		setups = append(setups, s)
	}
	sum := SummarizeSetups(setups)
	eq(t, "Count", sum.Count, 3)
	eq(t, "InviteTo200", sum.InviteTo200, DurationSummary{
		N: 3, Min: ms(100), Mean: ms(200), P50: ms(200), P95: ms(300), P99: ms(300), Max: ms(300),
	})
	eq(t, "InviteToConnected", sum.InviteToConnected, DurationSummary{
		N: 2, Min: ms(400), Mean: ms(450), P50: ms(400), P95: ms(500), P99: ms(500), Max: ms(500),
	})
	eq(t, "InviteToFirstMediaSIP", sum.InviteToFirstMediaSIP, DurationSummary{})
	sameKeys(t, sum, "count", "invite_to_200", "invite_to_connected", "invite_to_first_media_webrtc",
		"invite_to_first_media_sip")
	sameKeys(t, sum.InviteTo200, "n", "min_ns", "mean_ns", "p50_ns", "p95_ns", "p99_ns", "max_ns")
}
