package call

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/siprtc/siprtc/gateway/media"
)

// Record is a call's detail record: one JSON line per call (see the package documentation).
type Record struct {
	CallID    string    `json:"call_id"`
	SIPCallID string    `json:"sip_call_id,omitempty"`
	Direction Direction `json:"direction"`
	From      string    `json:"from"`
	To        string    `json:"to"`
	User      string    `json:"user"`
	Account   string    `json:"account"`
	Start     time.Time `json:"start"`
	// Answer is zero for a call that was never answered.
	Answer time.Time `json:"answer,omitzero"`
	End    time.Time `json:"end"`
	// Setup is start to answer; Duration answer to end (0 unanswered), in seconds.
	Setup     float64 `json:"setup_s,omitempty"`
	Duration  float64 `json:"duration_s"`
	EndReason string  `json:"end_reason"`
	SIPCode   int     `json:"sip_code,omitempty"`
	Outcome   Outcome `json:"outcome"`
	// Codec is the audio format the call carried ("PCMU/8000"), empty when none was chosen.
	Codec string `json:"codec,omitempty"`
	Video string `json:"video_codec,omitempty"`
	// WebRTC and SIP count each leg's packets (both media kinds).
	WebRTC LegRecord `json:"webrtc"`
	SIP    LegRecord `json:"sip"`
	// Repair is the WebRTC leg's NACK/RTX activity.
	NACKsSent       uint64 `json:"nacks_sent"`
	NACKsReceived   uint64 `json:"nacks_received"`
	Retransmissions uint64 `json:"retransmissions"`

	// Media is the bridge's last snapshot (not in the JSON line).
	Media media.Stats `json:"-"`
}

// LegRecord counts one leg's packets.
type LegRecord struct {
	PacketsReceived uint64 `json:"packets_received"`
	PacketsSent     uint64 `json:"packets_sent"`
	Lost            int64  `json:"lost"`
	Late            uint64 `json:"late"`
}

// JSON is the record as one line of JSON (no newline).
func (r Record) JSON() []byte {
	b, err := json.Marshal(r)
	if err != nil { // cannot happen: every field marshals
		return []byte(`{"error":"cdr"}`)
	}
	return b
}

func (c *Call) record(stats media.Stats) Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := Record{
		CallID: c.id, SIPCallID: c.sipCallID, Direction: c.dir, User: c.user, Account: c.account,
		Start: c.start, Answer: c.answer, End: c.endAt,
		EndReason: c.ending.reason, SIPCode: c.ending.code, Outcome: c.ending.outcome, Media: stats,
	}
	if c.dir == Outbound {
		r.From, r.To = c.user, c.remote
	} else {
		r.From, r.To = c.remote, c.user
	}
	if !c.answer.IsZero() {
		r.Setup = c.answer.Sub(c.start).Seconds()
		r.Duration = c.endAt.Sub(c.answer).Seconds()
		if r.Outcome != OutcomeFailed {
			r.Outcome = OutcomeAnswered
		}
	} else if r.Outcome == OutcomeAnswered {
		r.Outcome = OutcomeCanceled // ended by a hangup before the answer
	}
	if c.sel != nil && len(c.sel.Audio) > 0 {
		a := c.sel.Audio[0].SIP
		r.Codec = a.Name + "/" + strconv.Itoa(int(a.ClockRate))
	}
	if c.sel != nil && len(c.sel.Video) > 0 {
		r.Video = c.sel.Video[0].SIP.Name
	}
	for _, s := range []media.StreamStats{stats.Audio, stats.Video} {
		r.WebRTC.add(s.WebRTC)
		r.SIP.add(s.SIP)
	}
	r.NACKsSent, r.NACKsReceived, r.Retransmissions = stats.Repair.NACKsSent, stats.Repair.NACKsReceived, stats.Repair.Retransmissions
	return r
}

func (l *LegRecord) add(s media.LegStats) {
	l.PacketsReceived += s.Received
	l.PacketsSent += s.Sent
	l.Lost += s.Lost
	l.Late += s.Late
}
