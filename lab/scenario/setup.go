package scenario

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/siprtc/siprtc/gateway/signaling"
	"github.com/siprtc/siprtc/lab/metrics"
	"github.com/siprtc/siprtc/lab/peers/sipphone"
	"github.com/siprtc/siprtc/lab/peers/webclient"
)

// Direction is which side of the gateway places a call.
type Direction int

const (
	// WebRTCToSIP: the WebRTC client calls the SIP phone through a pool account (an invite
	// over the signalling WebSocket, then an INVITE from the gateway to the PBX).
	WebRTCToSIP Direction = iota
	// SIPToWebRTC: the SIP phone calls "0" + the client's user; the PBX routes it to the
	// gateway's proxy account with X-Number naming the user, and the gateway invites the
	// client over its WebSocket.
	SIPToWebRTC
)

// MarshalText makes a Direction its name in JSON.
func (d Direction) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

func (d Direction) String() string {
	switch d {
	case WebRTCToSIP:
		return "webrtc-to-sip"
	case SIPToWebRTC:
		return "sip-to-webrtc"
	}
	return fmt.Sprintf("Direction(%d)", int(d))
}

// Default peers of the set-up measurement: the client logs in as a user the pool accounts
// (rtx.conf acc_rule 10[05-09]) carry, the phone is a directory user outside the pool.
const (
	DefaultSetupClient = "1005"
	DefaultSetupPhone  = "1010"
)

// SetupOptions tunes MeasureSetup. The zero value places one call between DefaultSetupClient
// and DefaultSetupPhone.
type SetupOptions struct {
	// Calls is how many calls are placed, one after the other (default 1).
	Calls int
	// ClientUser and PhoneUser name the peers (defaults DefaultSetupClient, DefaultSetupPhone).
	ClientUser, PhoneUser string
	// Timeout bounds each call's set-up, from the invite to the first media at both ends
	// (default 60 s: beyond ICE's 25 s failure timeout).
	Timeout time.Duration
	// Gap is the pause between one call's end and the next invite (default 1 s): a person
	// calling again, and below the gateway's signalling rate limit, which 40 calls back to back
	// on a link without delay exceed (RATE_LIMITED).
	Gap time.Duration
}

// SetupResult is what MeasureSetup observed: one metrics.Setup per call, in order, and their
// summary.
type SetupResult struct {
	Direction Direction            `json:"direction"`
	Calls     []metrics.Setup      `json:"calls"`
	Summary   metrics.SetupSummary `json:"summary"`
}

// MeasureSetup places opts.Calls calls in w in direction dir, one at a time, and records for
// each the instants of metrics.Setup, every one taken by the peer that observed it (on the
// world's clock: virtual time on the emulated network):
//
//   - Invite: the caller sends its invite (the client's invite request, or the phone's INVITE);
//   - OK: the caller learns of the answer (the client's ACCEPTED_BY_REMOTE state, or the
//     phone's 200 OK);
//   - Connected: the client's PeerConnection is connected (ICE and DTLS done);
//   - FirstMediaWebRTC, FirstMediaSIP: the first RTP packet reaches the client, the phone.
//
// Both peers answer at once, without ringing, so that only protocol round trips and timers
// count: the phone answers an INVITE with 200 straight away (no 180), the client accepts an
// invitation as soon as it arrives (the accept acknowledges it too, so no separate
// "received"). Each call is hung up by its caller and the world quiesces before the next one.
func MeasureSetup(w *World, dir Direction, opts SetupOptions) (SetupResult, error) {
	if opts.Calls <= 0 {
		opts.Calls = 1
	}
	if opts.ClientUser == "" {
		opts.ClientUser = DefaultSetupClient
	}
	if opts.PhoneUser == "" {
		opts.PhoneUser = DefaultSetupPhone
	}
	if opts.Timeout <= 0 {
		opts.Timeout = time.Minute
	}
	if opts.Gap <= 0 {
		opts.Gap = time.Second
	}
	res := SetupResult{Direction: dir}
	phone, err := w.Phone(opts.PhoneUser)
	if err != nil {
		return res, err
	}
	phone.OnIncoming(func(in *sipphone.Incoming) { _, _ = in.Answer() })
	cl, err := w.Client(opts.ClientUser)
	if err != nil {
		return res, err
	}
	invitations := make(chan *webclient.Call, 1)
	cl.OnInvitation(func(inv *webclient.Invitation) {
		c, err := inv.Accept(w.Context(), "")
		if err != nil {
			return
		}
		select {
		case invitations <- c:
		default:
		}
	})
	for i := range opts.Calls {
		var s metrics.Setup
		var err error
		switch dir {
		case WebRTCToSIP:
			s, err = setupFromClient(w, cl, phone, opts)
		case SIPToWebRTC:
			s, err = setupFromPhone(w, phone, invitations, opts)
		default:
			err = fmt.Errorf("scenario: unknown direction %v", dir)
		}
		if err != nil {
			return res, fmt.Errorf("scenario: set-up %s, call %d of %d: %w", dir, i+1, opts.Calls, err)
		}
		res.Calls = append(res.Calls, s)
		if err := w.Quiesce(30 * time.Second); err != nil {
			return res, fmt.Errorf("scenario: set-up %s, call %d: the world did not quiesce: %w", dir, i+1, err)
		}
		time.Sleep(opts.Gap)
	}
	res.Summary = metrics.SummarizeSetups(res.Calls)
	return res, nil
}

// setupFromClient places one WebRTC -> SIP call and hangs it up from the client.
func setupFromClient(w *World, cl *webclient.Client, phone *sipphone.Phone, opts SetupOptions) (metrics.Setup, error) {
	var s metrics.Setup
	ctx, cancel := context.WithTimeout(w.Context(), opts.Timeout)
	defer cancel()
	c, err := cl.Call(ctx, opts.PhoneUser)
	if err != nil {
		return s, fmt.Errorf("invite: %w", err)
	}
	defer func() { _ = c.Hangup(w.Context(), "done") }()
	if _, err := c.WaitState(ctx, string(signaling.LocalAcceptedByRemote)); err != nil {
		return s, err
	}
	if err := c.WaitConnected(ctx); err != nil {
		return s, fmt.Errorf("client not connected: %w", err)
	}
	var pc *sipphone.Call
	if err := WaitFor(ctx, opts.Timeout, func() bool {
		if calls := phone.Calls(); len(calls) == 1 {
			pc = calls[0]
		}
		return pc != nil
	}); err != nil {
		return s, fmt.Errorf("the phone has no call: %w", err)
	}
	if err := waitFirstMedia(ctx, c, pc, opts.Timeout); err != nil {
		return s, err
	}
	st := c.Stats()
	s = metrics.Setup{
		Invite: st.Invited, OK200: st.Accepted, Connected: st.Connected,
		FirstMediaWebRTC: st.Audio.FirstReceived, FirstMediaSIP: pc.Media().Stats().FirstReceived,
	}
	if err := c.Hangup(ctx, "done"); err != nil {
		return s, fmt.Errorf("hangup: %w", err)
	}
	select {
	case <-pc.Done():
	case <-ctx.Done():
		return s, errors.New("the client's hangup did not reach the phone")
	}
	return s, nil
}

// setupFromPhone places one SIP -> WebRTC call and hangs it up from the phone.
func setupFromPhone(w *World, phone *sipphone.Phone, invitations <-chan *webclient.Call, opts SetupOptions) (metrics.Setup, error) {
	var s metrics.Setup
	ctx, cancel := context.WithTimeout(w.Context(), opts.Timeout)
	defer cancel()
	invite := time.Now()
	pc, err := phone.Call(ctx, "0"+opts.ClientUser)
	if err != nil {
		return s, fmt.Errorf("INVITE: %w", err)
	}
	ok := time.Now()
	defer func() { _ = pc.Hangup(w.Context()) }()
	var c *webclient.Call
	select {
	case c = <-invitations:
	case <-ctx.Done():
		return s, errors.New("the client accepted no invitation")
	}
	if err := c.WaitConnected(ctx); err != nil {
		return s, fmt.Errorf("client not connected: %w", err)
	}
	if err := waitFirstMedia(ctx, c, pc, opts.Timeout); err != nil {
		return s, err
	}
	st := c.Stats()
	s = metrics.Setup{
		Invite: invite, OK200: ok, Connected: st.Connected,
		FirstMediaWebRTC: st.Audio.FirstReceived, FirstMediaSIP: pc.Media().Stats().FirstReceived,
	}
	if err := pc.Hangup(ctx); err != nil {
		return s, fmt.Errorf("hangup: %w", err)
	}
	select {
	case <-c.Done():
	case <-ctx.Done():
		return s, errors.New("the phone's hangup did not reach the client")
	}
	return s, nil
}

// waitFirstMedia waits until audio has reached both ends.
func waitFirstMedia(ctx context.Context, c *webclient.Call, pc *sipphone.Call, d time.Duration) error {
	if err := c.WaitMedia(ctx, 1, 0); err != nil {
		return fmt.Errorf("no audio at the client: %w", err)
	}
	if err := WaitFor(ctx, d, func() bool { return pc.Media().Stats().PacketsReceived > 0 }); err != nil {
		return fmt.Errorf("no audio at the phone: %w", err)
	}
	return nil
}

// ---- bounds ----

// The timers a set-up waits on when a packet of its critical path is lost (pion and the lab's
// stream link, as built here): a lost WebSocket segment is resent one stream-link RTO later
// (max(200 ms, 2 RTT), doubling: lab/netem stream.go), a lost ICE check or response is
// repeated at the next connectivity check (pion/ice defaultCheckInterval, 200 ms), a lost DTLS
// flight is resent when its retransmission timer fires (pion/dtls FlightInterval, 1 s, doubling
// while the handshake makes no progress).
const (
	setupICECheckInterval = 200 * time.Millisecond
	setupDTLSRetransmit   = time.Second
	setupStreamMinRTO     = 200 * time.Millisecond
)

// SetupSlack is the processing slack of every set-up bound. In virtual time processing takes
// no time at all (the lossless measurements are exact multiples of the one-way delay), so it
// only has to absorb timer granularity; on loopback the real processing time adds to it.
const SetupSlack = 5 * time.Millisecond

// SetupFrame is what an interval that ends with a media packet adds to its bound: the sender
// starts its 20 ms packet clock when it may send (the client) or already runs it (the phone
// since its answer, the gateway forwarding it), so the first packet that can cross leaves up to
// one packet interval after the path opens.
const SetupFrame = 20 * time.Millisecond

// SetupInterval is one interval of a call set-up and what the protocol flow needs for it: its
// lossless bound is Legs one-way crossings of the client's link (the RTT's halves: every other
// link is perfect), plus slack; with loss, Packets is how many packets on its critical path
// (datagrams and WebSocket segments) a loss would delay.
type SetupInterval struct {
	// Name is the interval as lab measurements name it: invite_to_200, invite_to_connected,
	// invite_to_first_media_webrtc, invite_to_first_media_sip.
	Name string
	// Legs is the number of one-way crossings of the client link on the critical path.
	Legs int
	// Packets on the critical path: a loss of any of them delays the interval.
	Packets int
	// Media: the interval ends with a media packet (its bound adds SetupFrame).
	Media bool
	// SignallingOnly: the path is WebSocket segments only (its losses cost stream-link RTOs,
	// never a DTLS or ICE timer).
	SignallingOnly bool
	// Of extracts the interval from a measured set-up.
	Of func(metrics.Setup) (time.Duration, bool)
}

// Bound is the lossless bound at rtt: Legs one-way delays (metrics.Bound counts them as
// RoundTrips of RTT/2, since a set-up needs half round trips) plus SetupSlack and, for a media
// interval, SetupFrame.
func (iv SetupInterval) Bound(rtt time.Duration) metrics.Bound {
	slack := SetupSlack
	if iv.Media {
		slack += SetupFrame
	}
	return metrics.Bound{RoundTrips: iv.Legs, RTT: rtt / 2, Slack: slack}
}

// RetransmissionAllowance is what two losses on the interval's critical path can add at most:
// the costliest of a lost packet being resent twice (the second timer backed off, so three
// times the first) or two packets resent once. A WebSocket segment costs RTO = max(200 ms,
// 2 RTT) then 2 RTO; a DTLS flight 1 s then 2 s; an ICE check 200 ms each time. A signalling
// interval only pays RTOs.
func (iv SetupInterval) RetransmissionAllowance(rtt time.Duration) time.Duration {
	rto := max(setupStreamMinRTO, 2*rtt)
	allow := 3 * rto
	if !iv.SignallingOnly {
		allow = max(allow, 3*setupDTLSRetransmit, 2*setupICECheckInterval)
	}
	return allow
}

// LossBound is the bound with loss: Bound(rtt) plus RetransmissionAllowance(rtt).
func (iv SetupInterval) LossBound(rtt time.Duration) metrics.Bound {
	b := iv.Bound(rtt)
	b.Slack += iv.RetransmissionAllowance(rtt)
	return b
}

// LosslessProbability is the probability that none of the interval's critical packets is lost
// when each is lost independently with probability p (Bernoulli): (1-p)^Packets. A set-up
// that loses none of them ends within Bound, so at least that share of set-ups should.
func (iv SetupInterval) LosslessProbability(p float64) float64 {
	q := 1.0
	for range iv.Packets {
		q *= 1 - p
	}
	return q
}

// SetupIntervals derives, for a direction, each interval's one-way crossings and critical
// packets from the message flow. R is the client link's round trip; every other link is
// perfect and processing takes no time in virtual time; a step "at xR" is when it happens
// after the invite.
//
// WebRTC -> SIP (the client offers; it is ICE controlling and, pion's default for an offerer
// answered with a=setup:active, the DTLS server; the gateway is the DTLS client):
//
//	0     client: invite with the SDP offer (WebSocket; candidates trickle later)
//	0.5R  gateway: INVITE -> PBX -> phone, 200 at once; answer to the client (SDP with its
//	      host candidate), then ACCEPTED_BY_REMOTE                          [1 segment up]
//	1R    client: 200 known (ACCEPTED_BY_REMOTE)  => invite_to_200 = 2 legs
//	      [segments down before it, in order on the stream: ok, two states, sdp, ACCEPTED: 5]
//	      client starts ICE: binding request to the gateway's candidate
//	1.5R  gateway answers it (and learns the client as a peer-reflexive candidate)
//	2R    client: check succeeded, nominates (USE-CANDIDATE)
//	2.5R  gateway: nominated pair selected, ICE connected; DTLS flight 1 (ClientHello)
//	3R    client: ICE connected (nomination answered); flight 2 (HelloVerifyRequest: pion's
//	      server always asks for a cookie, so the full DTLS 1.2 handshake takes 3 round trips
//	      for the client side, not 2)
//	3.5R  flight 3 (ClientHello with cookie)
//	4R    flight 4 (ServerHello, Certificate, ..., ServerHelloDone)
//	4.5R  flight 5 (Certificate, ClientKeyExchange, CertificateVerify, Finished)
//	5R    client: DTLS done, PeerConnection connected  => invite_to_connected = 10 legs;
//	      flight 6 (Finished) and the first audio packet
//	5.5R  gateway: DTLS done; the client's audio reaches the phone => first_media_sip = 11
//	      legs; the gateway forwards the phone's next packet (the phone sends since 0.5R)
//	6R    first media at the client => first_media_webrtc = 12 legs (+ one packet interval)
//
// Critical packets: 200: invite + 5 segments down = 6; connected: invite, 4 segments down up
// to the answer, 4 ICE packets, flights 1-5 = 14; first media: flight 6 and one RTP packet
// more = 16.
//
// SIP -> WebRTC (the gateway offers in the invitation; it is ICE controlling and the DTLS
// server, the client answers and is the DTLS client):
//
//	0     phone: INVITE -> PBX -> gateway; invitation with the SDP offer (and the gateway's
//	      candidate) to the client
//	0.5R  client: accept with its SDP answer (the accept acknowledges the invitation); starts
//	      its ICE checks                                                       [1 segment down]
//	1R    gateway: 200 -> PBX -> phone  => invite_to_200 = 2 legs          [1 segment up]
//	      gateway answers the client's check and checks back (triggered check)
//	1.5R  client answers the gateway's check
//	2R    gateway: check succeeded, nominates
//	2.5R  client: nominated, ICE connected; DTLS flight 1
//	3R-4.5R flights 2 to 5
//	5R    gateway: DTLS done (flight 5); flight 6; it forwards the phone's next packet
//	5.5R  client: DTLS done, connected => invite_to_connected = 11 legs; first media at the
//	      client => first_media_webrtc = 11 legs (+ one packet interval); the client's first
//	      audio packet leaves
//	6R    the client's audio reaches the phone => first_media_sip = 12 legs
//
// Critical packets: 200: invitation + accept = 2; connected: 2 segments, ICE (the client's
// check and its answer, the gateway's check, its answer, the nomination and its answer: 6),
// flights 1-6 = 14; first media at the client: flights 1-5 and one RTP packet = 14; at the
// phone: flights 1-6 and one RTP packet = 15.
func SetupIntervals(dir Direction) []SetupInterval {
	type counts struct{ legs, packets int }
	var ok, conn, webrtc, sip counts
	switch dir {
	case WebRTCToSIP:
		ok, conn, sip, webrtc = counts{2, 6}, counts{10, 14}, counts{11, 16}, counts{12, 16}
	default:
		ok, conn, webrtc, sip = counts{2, 2}, counts{11, 14}, counts{11, 14}, counts{12, 15}
	}
	return []SetupInterval{
		{Name: "invite_to_200", Legs: ok.legs, Packets: ok.packets, SignallingOnly: true, Of: metrics.Setup.InviteTo200},
		{Name: "invite_to_connected", Legs: conn.legs, Packets: conn.packets, Of: metrics.Setup.InviteToConnected},
		{Name: "invite_to_first_media_webrtc", Legs: webrtc.legs, Packets: webrtc.packets, Media: true, Of: metrics.Setup.InviteToFirstMediaWebRTC},
		{Name: "invite_to_first_media_sip", Legs: sip.legs, Packets: sip.packets, Media: true, Of: metrics.Setup.InviteToFirstMediaSIP},
	}
}
