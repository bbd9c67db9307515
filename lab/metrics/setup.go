package metrics

import (
	"encoding/json"
	"math"
	"slices"
	"time"
)

// Setup holds the instants of one call set-up, as a lab run observed them (on one clock: in
// the lab, the virtual clock). A zero instant means the event never happened.
//
// Its JSON form carries the instants (RFC 3339, "0001-01-01T00:00:00Z" when never) and the
// four derived intervals in nanoseconds, null when an end is missing: invite_to_200_ns,
// invite_to_connected_ns, invite_to_first_media_webrtc_ns and invite_to_first_media_sip_ns.
// Decoding ignores the derived fields.
type Setup struct {
	// Invite is when the caller sent the INVITE (or, for a WebRTC-originated call, the
	// gateway's signalling request that starts it).
	Invite time.Time `json:"invite"`
	// OK200 is when the caller received the 200 OK to the INVITE.
	OK200 time.Time `json:"ok_200"`
	// Connected is when the WebRTC leg's ICE and DTLS both completed (the PeerConnection
	// state became "connected").
	Connected time.Time `json:"connected"`
	// FirstMediaWebRTC is when the WebRTC end received its first RTP packet.
	FirstMediaWebRTC time.Time `json:"first_media_webrtc"`
	// FirstMediaSIP is when the SIP end received its first RTP packet.
	FirstMediaSIP time.Time `json:"first_media_sip"`
}

// since returns end - s.Invite, and false when either instant is zero.
func (s Setup) since(end time.Time) (time.Duration, bool) {
	if s.Invite.IsZero() || end.IsZero() {
		return 0, false
	}
	return end.Sub(s.Invite), true
}

// InviteTo200 is OK200 - Invite: the post-dial delay up to the answer (false if either is missing).
func (s Setup) InviteTo200() (time.Duration, bool) { return s.since(s.OK200) }

// InviteToConnected is Connected - Invite (false if either is missing).
func (s Setup) InviteToConnected() (time.Duration, bool) { return s.since(s.Connected) }

// InviteToFirstMediaWebRTC is FirstMediaWebRTC - Invite (false if either is missing).
func (s Setup) InviteToFirstMediaWebRTC() (time.Duration, bool) {
	return s.since(s.FirstMediaWebRTC)
}

// InviteToFirstMediaSIP is FirstMediaSIP - Invite (false if either is missing).
func (s Setup) InviteToFirstMediaSIP() (time.Duration, bool) { return s.since(s.FirstMediaSIP) }

type setupFields Setup // without the methods, so that encoding does not recurse

type setupJSON struct {
	setupFields
	InviteTo200              *time.Duration `json:"invite_to_200_ns"`
	InviteToConnected        *time.Duration `json:"invite_to_connected_ns"`
	InviteToFirstMediaWebRTC *time.Duration `json:"invite_to_first_media_webrtc_ns"`
	InviteToFirstMediaSIP    *time.Duration `json:"invite_to_first_media_sip_ns"`
}

func durationPtr(d time.Duration, ok bool) *time.Duration {
	if !ok {
		return nil
	}
	return &d
}

// MarshalJSON encodes the instants and the derived intervals (see [Setup]).
func (s Setup) MarshalJSON() ([]byte, error) {
	return json.Marshal(setupJSON{
		setupFields:              setupFields(s),
		InviteTo200:              durationPtr(s.InviteTo200()),
		InviteToConnected:        durationPtr(s.InviteToConnected()),
		InviteToFirstMediaWebRTC: durationPtr(s.InviteToFirstMediaWebRTC()),
		InviteToFirstMediaSIP:    durationPtr(s.InviteToFirstMediaSIP()),
	})
}

// UnmarshalJSON decodes the instants; the derived intervals are recomputed, not read.
func (s *Setup) UnmarshalJSON(b []byte) error {
	var f setupFields
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	*s = Setup(f)
	return nil
}

// Bound is a theoretical limit for a set-up interval: RoundTrips round trips of RTT each, plus
// Slack for processing and timers. For instance the 200 OK of a call through the gateway
// needs at least the INVITE's and the 200's transits on both legs.
type Bound struct {
	RoundTrips int           `json:"round_trips"`
	RTT        time.Duration `json:"rtt_ns"`
	Slack      time.Duration `json:"slack_ns"`
}

// Limit is RoundTrips*RTT + Slack.
func (b Bound) Limit() time.Duration {
	return time.Duration(b.RoundTrips)*b.RTT + b.Slack
}

// Ratio is measured / Limit(): 1 means exactly at the limit, above 1 over it. A zero limit
// gives 0 for d == 0 and ±Inf otherwise (do not store that in JSON).
func (b Bound) Ratio(d time.Duration) float64 {
	l := b.Limit()
	if l == 0 {
		if d == 0 {
			return 0
		}
		if d > 0 {
			return math.Inf(1)
		}
		return math.Inf(-1)
	}
	return float64(d) / float64(l)
}

// Within reports whether d <= Limit().
func (b Bound) Within(d time.Duration) bool { return d <= b.Limit() }

// SetupSummary summarizes the set-ups of many calls, interval by interval. Each
// DurationSummary covers only the set-ups where both ends of that interval happened; its N
// tells how many, Count how many set-ups there were in all.
type SetupSummary struct {
	Count                    int             `json:"count"`
	InviteTo200              DurationSummary `json:"invite_to_200"`
	InviteToConnected        DurationSummary `json:"invite_to_connected"`
	InviteToFirstMediaWebRTC DurationSummary `json:"invite_to_first_media_webrtc"`
	InviteToFirstMediaSIP    DurationSummary `json:"invite_to_first_media_sip"`
}

// SummarizeSetups returns min, mean, nearest-rank median/p95/p99 and max of each interval.
func SummarizeSetups(setups []Setup) SetupSummary {
	pick := func(f func(Setup) (time.Duration, bool)) DurationSummary {
		var ds []time.Duration
		for _, s := range setups {
			if d, ok := f(s); ok {
				ds = append(ds, d)
			}
		}
		slices.Sort(ds)
		if len(ds) == 0 {
			return DurationSummary{}
		}
		return summarizeSortedDurations(ds)
	}
	return SetupSummary{
		Count:                    len(setups),
		InviteTo200:              pick(Setup.InviteTo200),
		InviteToConnected:        pick(Setup.InviteToConnected),
		InviteToFirstMediaWebRTC: pick(Setup.InviteToFirstMediaWebRTC),
		InviteToFirstMediaSIP:    pick(Setup.InviteToFirstMediaSIP),
	}
}
