package webclient

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/siprtc/siprtc/gateway/rtc"
	"github.com/siprtc/siprtc/gateway/signaling"
)

// StateEvent is one invitation state the gateway reported for a call.
type StateEvent struct {
	At       time.Time
	State    string // a signaling.LocalState (placed calls) or signaling.RemoteState (answered calls)
	SIPCode  int
	Code     string // failure code
	Reason   string
	Response string
}

// Stats is a call's record.
type Stats struct {
	CallID   string
	Outbound bool
	Peer     string // callee, or caller
	State    string // last invitation state
	// Invited: the invite was sent, or the invitation arrived. Accepted: ACCEPTED_BY_REMOTE,
	// or ACCEPTED. Connected: the PeerConnection connected (ICE and DTLS). Ended: the call ended.
	Invited, Accepted, Connected, Ended time.Time
	EndReason                           string
	Audio                               MediaStats
	Video                               VideoStats
	DTMFSent                            int // digits sent in the audio stream
	DTMFMessagesSent                    int
	// Repair counts the PeerConnection's NACK, retransmission and feedback traffic
	// (gateway/rtc's counting interceptor): NACKsSent are the client's NACKs for what it lost.
	Repair rtc.RepairStats
	// BWE is the bandwidth estimator's state (WithBWE; zero without it).
	BWE rtc.BWEStats
}

// CallOption sets fields of an invite.
type CallOption func(*outMsg)

// WithContent sets the invitation's content (at most 8 KiB of UTF-8).
func WithContent(s string) CallOption { return func(m *outMsg) { m.Content = s } }

// WithChannelID sets the invitation's channel id (at most 64 bytes).
func WithChannelID(s string) CallOption { return func(m *outMsg) { m.ChannelID = s } }

// Call is one call, placed (Client.Call) or answered (Invitation.Accept). Its signalling and
// its PeerConnection's signalling state are handled on one goroutine, in arrival order.
type Call struct {
	cl       *Client
	outbound bool
	peer     string
	log      *slog.Logger
	done     chan struct{}
	wake     chan struct{}
	endOnce  sync.Once

	mu          sync.Mutex
	id          string
	offer       *signaling.SessionDescription // an answered call's offer, until accepted
	answered    bool
	states      []StateEvent
	changed     chan struct{}
	pc          *rtc.Peer
	tap         *tap
	m           *media
	canTrickle  bool
	localCands  []json.RawMessage
	remoteCands []webrtc.ICECandidateInit
	established bool
	finished    bool
	endReason   string
	invited     time.Time
	accepted    time.Time
	connected   time.Time
	ended       time.Time
	msgDTMF     []DTMFEvent
	dtmfMsgSent int
	inbox       []func()
}

// newCall makes a call and starts its goroutine; nil once the client is closed.
func (cl *Client) newCall(outbound bool, peer string) *Call {
	c := &Call{
		cl: cl, outbound: outbound, peer: peer, log: cl.log,
		done: make(chan struct{}), wake: make(chan struct{}, 1), changed: make(chan struct{}),
	}
	if !cl.goTracked(c.loop) {
		return nil
	}
	return c
}

// Call places a call to callee: an invite carrying the SDP offer. It returns once the gateway
// took the invite (the call has its id and is SENT_TO_REMOTE); follow it with WaitState.
func (cl *Client) Call(ctx context.Context, callee string, opts ...CallOption) (*Call, error) {
	c := cl.newCall(true, callee)
	if c == nil {
		return nil, ErrClosed
	}
	fail := func(err error) (*Call, error) {
		c.finish("invite failed: " + err.Error())
		return nil, err
	}
	pc, err := c.newPeer()
	if err != nil {
		return fail(err)
	}
	if err := c.attachMedia(pc.PeerConnection, false); err != nil {
		return fail(err)
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return fail(fmt.Errorf("webclient: offer: %w", err))
	}
	if err := pc.SetLocalDescription(offer); err != nil {
		return fail(fmt.Errorf("webclient: offer: %w", err))
	}
	m := outMsg{Type: signaling.TypeInvite, Callee: callee, Description: describe(pc.LocalDescription())}
	for _, o := range opts {
		o(&m)
	}
	c.mu.Lock()
	c.invited = time.Now()
	c.mu.Unlock()
	_, err = cl.request(ctx, m, func(r inMsg) {
		if r.Type != signaling.TypeOK {
			return
		}
		c.mu.Lock()
		c.id = r.CallID
		c.mu.Unlock()
		cl.register(c)
		c.enqueue(c.startTrickle)
	})
	if err != nil {
		return fail(err)
	}
	return c, nil
}

// ID is the gateway's call id ("" until the invite is taken).
func (c *Call) ID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.id
}

// Outbound reports whether the client placed the call.
func (c *Call) Outbound() bool { return c.outbound }

// Peer is the callee of a placed call, the caller of an answered one.
func (c *Call) Peer() string { return c.peer }

// PeerConnection is the call's PeerConnection (nil before an invitation is accepted).
func (c *Call) PeerConnection() *webrtc.PeerConnection {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pc == nil {
		return nil
	}
	return c.pc.PeerConnection
}

// Established reports whether the call was answered (ACCEPTED_BY_REMOTE, or for an answered
// call ACCEPT_SENT_TO_LOCAL): media flows and Hangup ends it.
func (c *Call) Established() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.established
}

// Done is closed when the call has ended and its media and PeerConnection are closed.
func (c *Call) Done() <-chan struct{} { return c.done }

// EndReason says how the call ended ("" while it runs): "hangup: BYE", "local hangup",
// "REFUSED_BY_REMOTE 486", "connection closed", ...
func (c *Call) EndReason() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.endReason
}

// States returns the invitation states reported so far.
func (c *Call) States() []StateEvent {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.states)
}

// WaitState waits until the call has reached state (one already reached counts). It fails
// with ErrCallEnded when the call ends without reaching it.
func (c *Call) WaitState(ctx context.Context, state string) (StateEvent, error) {
	var found StateEvent
	err := c.wait(ctx, func() bool {
		for _, s := range c.states {
			if s.State == state {
				found = s
				return true
			}
		}
		return false
	})
	if err == ErrCallEnded {
		c.mu.Lock()
		last := "none"
		if n := len(c.states); n > 0 {
			last = c.states[n-1].State
		}
		err = fmt.Errorf("%w (%s, last state %s) before %s", ErrCallEnded, c.endReason, last, state)
		c.mu.Unlock()
	}
	return found, err
}

// WaitConnected waits until the PeerConnection is connected (ICE and DTLS).
func (c *Call) WaitConnected(ctx context.Context) error {
	return c.wait(ctx, func() bool { return !c.connected.IsZero() })
}

// wait waits until cond (called with c.mu held) holds; ErrCallEnded if the call ends first.
func (c *Call) wait(ctx context.Context, cond func() bool) error {
	for {
		c.mu.Lock()
		ok, finished, ch := cond(), c.finished, c.changed
		c.mu.Unlock()
		switch {
		case ok:
			return nil
		case finished:
			return ErrCallEnded
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// WaitMedia waits until at least audio audio packets (and video video frames) have arrived,
// checking every 20 ms.
func (c *Call) WaitMedia(ctx context.Context, audio, videoFrames uint64) error {
	t := time.NewTicker(audioFrame)
	defer t.Stop()
	for {
		s := c.Stats()
		if s.Audio.PacketsReceived >= audio && s.Video.FramesReceived >= videoFrames {
			return nil
		}
		select {
		case <-t.C:
		case <-c.done:
			return ErrCallEnded
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Stats returns the call's record so far.
func (c *Call) Stats() Stats {
	c.mu.Lock()
	s := Stats{
		CallID: c.id, Outbound: c.outbound, Peer: c.peer,
		Invited: c.invited, Accepted: c.accepted, Connected: c.connected, Ended: c.ended, EndReason: c.endReason,
		DTMFMessagesSent: c.dtmfMsgSent,
	}
	if n := len(c.states); n > 0 {
		s.State = c.states[n-1].State
	}
	m, pc := c.m, c.pc
	c.mu.Unlock()
	if m != nil {
		s.Audio, s.Video, s.DTMFSent = m.stats()
	}
	if pc != nil {
		s.Repair = pc.Repair.Snapshot()
		if pc.BWE != nil {
			s.BWE = pc.BWE.Stats()
		}
	}
	return s
}

// Packets returns the per-packet logs: what the client sent and what it received.
func (c *Call) Packets() (sent, received []PacketRecord) {
	if m := c.media(); m != nil {
		return m.packets()
	}
	return nil, nil
}

// ToneFrequency estimates the frequency of the audio received over the last 2 s (G.711 only:
// ErrUndecodable for Opus; ErrNoTone when there is too little).
func (c *Call) ToneFrequency() (float64, error) {
	if m := c.media(); m != nil {
		return m.toneFrequency()
	}
	return 0, ErrNoTone
}

// DTMF returns the digits received, from the audio stream and from dtmf messages, in arrival
// order.
func (c *Call) DTMF() []DTMFEvent {
	var out []DTMFEvent
	if m := c.media(); m != nil {
		out = m.dtmfEvents()
	}
	c.mu.Lock()
	out = append(out, c.msgDTMF...)
	c.mu.Unlock()
	slices.SortStableFunc(out, func(a, b DTMFEvent) int { return a.At.Compare(b.At) })
	return out
}

// SendDTMF plays digits as RFC 4733 telephone-events in the audio stream, each held for
// duration (at most 1.36 s at 48 kHz, the 16-bit duration field; longer is cut), 60 ms apart,
// and returns once the last one has ended. The call must be connected for them to go out.
func (c *Call) SendDTMF(ctx context.Context, digits string, duration time.Duration) error {
	if duration <= 0 {
		return fmt.Errorf("%w: DTMF duration %v", ErrInvalidArgument, duration)
	}
	m := c.media()
	if m == nil {
		return fmt.Errorf("%w: no media yet", ErrNotConnected)
	}
	return m.sendDTMF(ctx, digits, duration)
}

// SendDTMFMessage sends one digit as a dtmf signalling message (the gateway sends SIP INFO);
// duration is 40 ms to 8 s, 0 for the gateway's default.
func (c *Call) SendDTMFMessage(ctx context.Context, digit string, duration time.Duration) error {
	if _, err := dtmfCode(digit); err != nil {
		return err
	}
	if _, err := c.cl.request(ctx, outMsg{Type: signaling.TypeDTMF, CallID: c.ID(), Digit: digit, Duration: duration.Milliseconds()}, nil); err != nil {
		return err
	}
	c.mu.Lock()
	c.dtmfMsgSent++
	c.mu.Unlock()
	return nil
}

// Cancel withdraws a placed call that is not answered yet; the CANCELED state follows.
func (c *Call) Cancel(ctx context.Context) error {
	_, err := c.cl.request(ctx, outMsg{Type: signaling.TypeCancel, CallID: c.ID()}, nil)
	return err
}

// Hangup ends an established call (ACCEPTED_BY_REMOTE, ACCEPT_SENT_TO_LOCAL or ACCEPTED) and
// closes its media. A pending invitation is ended with Cancel or Invitation.Refuse instead.
func (c *Call) Hangup(ctx context.Context, reason string) error {
	_, err := c.cl.request(ctx, outMsg{Type: signaling.TypeHangup, CallID: c.ID(), Reason: reason}, nil)
	switch {
	case err == nil:
		c.finish("local hangup")
	case IsCode(err, string(signaling.CodeUnknownCall)):
		c.finish("local hangup of an unknown call")
	}
	return err
}

func (c *Call) media() *media {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m
}

func (c *Call) isFinished() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.finished
}

// signalLocked wakes the waiters.
func (c *Call) signalLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// ---- the call's goroutine ----

// enqueue runs f on the call's goroutine, after what is already queued.
func (c *Call) enqueue(f func()) {
	c.mu.Lock()
	c.inbox = append(c.inbox, f)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *Call) loop() {
	for {
		c.mu.Lock()
		items := c.inbox
		c.inbox = nil
		c.mu.Unlock()
		for _, f := range items {
			if c.isFinished() {
				break
			}
			f()
		}
		select {
		case <-c.wake:
		case <-c.done:
			return
		}
	}
}

// deliver hands a gateway message about this call to its goroutine.
func (c *Call) deliver(m inMsg) { c.enqueue(func() { c.handle(m) }) }

func (c *Call) handle(m inMsg) {
	switch m.Type {
	case signaling.TypeLocalInvitation, signaling.TypeRemoteInvitation:
		c.recordState(m)
		if endsCall(m.State) {
			reason := m.State
			if m.Code != "" {
				reason += " " + m.Code
			}
			if m.SIPCode != 0 {
				reason += fmt.Sprintf(" %d", m.SIPCode)
			}
			c.finish(reason)
		}
	case signaling.TypeSDP:
		if m.Description != nil {
			if err := c.remoteDescription(*m.Description); err != nil {
				c.log.Warn("webclient: remote description", "call", c.ID(), "type", m.Description.Type, "err", err)
			}
		}
	case signaling.TypeCandidate:
		c.remoteCandidate(m.Candidate)
	case signaling.TypeDTMF:
		c.mu.Lock()
		c.msgDTMF = append(c.msgDTMF, DTMFEvent{
			At: time.Now(), Digit: m.Digit, Duration: time.Duration(m.Duration) * time.Millisecond,
			Source: DTMFFromMessage, Ended: true,
		})
		c.mu.Unlock()
	case signaling.TypeHangup:
		c.finish("hangup: " + m.Reason)
	}
}

// endsCall: the invitation states after which there is no call.
func endsCall(state string) bool {
	switch state {
	// CANCELED and FAILURE are spelt the same in both state sets.
	case string(signaling.LocalRefusedByRemote), string(signaling.LocalCanceled), string(signaling.LocalFailure),
		string(signaling.RemoteRefused):
		return true
	}
	return false
}

func (c *Call) recordState(m inMsg) {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.states = append(c.states, StateEvent{At: now, State: m.State, SIPCode: m.SIPCode, Code: m.Code, Reason: m.Reason, Response: m.Response})
	switch m.State {
	case string(signaling.LocalAcceptedByRemote), string(signaling.RemoteAccepted):
		c.established = true
		if c.accepted.IsZero() {
			c.accepted = now
		}
	case string(signaling.RemoteAcceptSentToLocal):
		c.established = true
	}
	c.signalLocked()
}

// newPeer builds the call's PeerConnection (gateway/rtc) and wires its callbacks to the call's
// goroutine. Remote descriptions go through the rtc.Peer (RED and FlexFEC read them).
func (c *Call) newPeer() (*rtc.Peer, error) {
	tp := newTap(c.cl.media.logLimit)
	p, err := rtc.NewPeer(c.cl.rtcCfg, webrtc.Configuration{}, rtc.WithInterceptor(tp))
	if err != nil {
		return nil, fmt.Errorf("webclient: peer: %w", err)
	}
	p.OnICECandidate(func(cand *webrtc.ICECandidate) {
		c.enqueue(func() { c.localCandidate(cand) })
	})
	p.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		c.enqueue(func() { c.connectionState(s) })
	})
	c.mu.Lock()
	if c.finished {
		c.mu.Unlock()
		_ = p.Close()
		return nil, ErrCallEnded
	}
	c.pc, c.tap = p, tp
	c.mu.Unlock()
	return p, nil
}

func (c *Call) attachMedia(pc *webrtc.PeerConnection, answering bool) error {
	c.mu.Lock()
	tp, peer := c.tap, c.pc
	c.mu.Unlock()
	m, err := newMedia(pc, c.cl.media, answering, tp, peer.BWE)
	if err != nil {
		return fmt.Errorf("webclient: media: %w", err)
	}
	c.mu.Lock()
	if c.finished {
		c.mu.Unlock()
		m.halt()
		m.wait()
		return ErrCallEnded
	}
	c.m = m
	c.mu.Unlock()
	return nil
}

func (c *Call) connectionState(s webrtc.PeerConnectionState) {
	c.log.Debug("webclient: peer connection", "call", c.ID(), "state", s)
	if s != webrtc.PeerConnectionStateConnected {
		return
	}
	c.mu.Lock()
	if c.connected.IsZero() {
		c.connected = time.Now()
		c.signalLocked()
	}
	m := c.m
	c.mu.Unlock()
	if m != nil {
		m.start()
	}
}

// localCandidate trickles one of the client's candidates (nil: gathering is complete, send
// end-of-candidates), or keeps it until the gateway knows the call.
func (c *Call) localCandidate(cand *webrtc.ICECandidate) {
	raw := json.RawMessage("null")
	if cand != nil {
		init := cand.ToJSON()
		b, err := json.Marshal(signaling.ICECandidate{
			Candidate: init.Candidate, SDPMid: init.SDPMid, SDPMLineIndex: init.SDPMLineIndex, UsernameFragment: init.UsernameFragment,
		})
		if err != nil {
			return
		}
		raw = b
	}
	c.mu.Lock()
	if !c.canTrickle {
		c.localCands = append(c.localCands, raw)
		c.mu.Unlock()
		return
	}
	id := c.id
	c.mu.Unlock()
	c.cl.post(outMsg{Type: signaling.TypeCandidate, CallID: id, Candidate: raw})
}

// startTrickle: the gateway has the call and the client's description; send the candidates
// gathered so far and the later ones as they come.
func (c *Call) startTrickle() {
	c.mu.Lock()
	c.canTrickle = true
	cands, id := c.localCands, c.id
	c.localCands = nil
	c.mu.Unlock()
	for _, raw := range cands {
		c.cl.post(outMsg{Type: signaling.TypeCandidate, CallID: id, Candidate: raw})
	}
}

// remoteCandidate adds one of the gateway's candidates, or keeps it until the remote
// description is set.
func (c *Call) remoteCandidate(cand *signaling.ICECandidate) {
	var init webrtc.ICECandidateInit
	if cand != nil && !cand.End() {
		init = webrtc.ICECandidateInit{Candidate: cand.Candidate, SDPMid: cand.SDPMid, SDPMLineIndex: cand.SDPMLineIndex, UsernameFragment: cand.UsernameFragment}
		if init.SDPMid == nil && init.SDPMLineIndex == nil {
			zero := uint16(0) // BUNDLE: the first m-line carries the transport
			init.SDPMLineIndex = &zero
		}
	}
	c.mu.Lock()
	pc := c.pc
	if pc == nil || pc.RemoteDescription() == nil {
		c.remoteCands = append(c.remoteCands, init)
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	if err := pc.AddICECandidate(init); err != nil {
		c.log.Debug("webclient: remote candidate not taken", "call", c.ID(), "err", err)
	}
}

func (c *Call) flushRemoteCandidates() {
	c.mu.Lock()
	cands, pc := c.remoteCands, c.pc
	c.remoteCands = nil
	c.mu.Unlock()
	for _, init := range cands {
		if err := pc.AddICECandidate(init); err != nil {
			c.log.Debug("webclient: remote candidate not taken", "call", c.ID(), "err", err)
		}
	}
}

// remoteDescription applies the gateway's offer (answering it), answer, pranswer (early
// media) or rollback.
func (c *Call) remoteDescription(d signaling.SessionDescription) error {
	c.mu.Lock()
	pc := c.pc
	if pc == nil {
		// An invitation not accepted yet: its newest offer is the one to answer.
		if d.Type == "offer" {
			c.offer = &d
		}
		c.mu.Unlock()
		return nil
	}
	c.mu.Unlock()
	typ := webrtc.NewSDPType(d.Type)
	if typ == webrtc.SDPTypeRollback {
		return pc.SetRemoteDescription(webrtc.SessionDescription{Type: typ})
	}
	if typ == webrtc.SDPTypeOffer && pc.SignalingState() == webrtc.SignalingStateHaveLocalOffer {
		// The gateway's offer wins a glare, as with the browser page.
		if err := pc.SetLocalDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeRollback}); err != nil {
			return err
		}
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: typ, SDP: d.SDP}); err != nil {
		return err
	}
	c.flushRemoteCandidates()
	if typ != webrtc.SDPTypeOffer {
		return nil
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return err
	}
	if err := pc.SetLocalDescription(answer); err != nil {
		return err
	}
	c.cl.post(outMsg{Type: signaling.TypeSDP, CallID: c.ID(), Description: describe(pc.LocalDescription())})
	return nil
}

func webrtcDescription(d signaling.SessionDescription) webrtc.SessionDescription {
	return webrtc.SessionDescription{Type: webrtc.NewSDPType(d.Type), SDP: d.SDP}
}

func describe(d *webrtc.SessionDescription) *signaling.SessionDescription {
	return &signaling.SessionDescription{Type: d.Type.String(), SDP: d.SDP}
}

// finish ends the call once: its media stops and its PeerConnection closes; Done is closed
// after both.
func (c *Call) finish(reason string) {
	c.endOnce.Do(func() {
		c.mu.Lock()
		c.finished, c.endReason, c.ended = true, reason, time.Now()
		pc, m := c.pc, c.m
		c.signalLocked()
		c.mu.Unlock()
		c.cl.unregister(c)
		if m != nil {
			m.halt()
		}
		if pc != nil {
			if err := pc.Close(); err != nil {
				c.log.Debug("webclient: peer close", "call", c.ID(), "err", err)
			}
		}
		if m != nil {
			m.wait()
		}
		c.log.Debug("webclient: call ended", "call", c.ID(), "reason", reason)
		close(c.done)
	})
}
