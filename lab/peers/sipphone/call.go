package sipphone

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/emiago/sipgo/sip"

	"github.com/siprtc/siprtc/gateway/sipua"
)

// CallOption tunes one outgoing call.
type CallOption func(*callConfig)

type callConfig struct {
	invite []sipua.InviteOption
}

// WithHeader adds a header field to the INVITE (X-Number, P-Asserted-Identity, ...).
func WithHeader(name, value string) CallOption {
	return func(c *callConfig) { c.invite = append(c.invite, sipua.WithHeader(name, value)) }
}

// WithProvisionalHandler observes every 1xx of the INVITE once (a retransmitted reliable one is
// not passed again). It runs on the goroutine of Call: keep it short.
func WithProvisionalHandler(f func(*sip.Response)) CallOption {
	return func(c *callConfig) { c.invite = append(c.invite, sipua.OnProvisional(f)) }
}

// WithEarlyMediaHandler observes 1xx responses that carry a session description (183 with early
// media). The phone records early RTP on the call's socket either way.
func WithEarlyMediaHandler(f func(*sip.Response)) CallOption {
	return func(c *callConfig) { c.invite = append(c.invite, sipua.OnEarlyMedia(f)) }
}

// Call is an established call, outgoing or incoming: a sipua dialog and its RTP session.
type Call struct {
	p     *Phone
	d     *sipua.Dialog
	media *Media

	mu      sync.Mutex
	sdpID   uint64 // o= of the phone's descriptions: the version counts up with each new one
	sdpVer  uint64
	sending bool // the peer's last offer lets the phone send

	done    chan struct{}
	endOnce sync.Once
}

func newCall(p *Phone, m *Media) *Call {
	return &Call{p: p, media: m, sdpID: uint64(randUint32()), sdpVer: 1, sending: true, done: make(chan struct{})}
}

// Done is closed when the call ends: BYE sent or received, or the phone closed.
func (c *Call) Done() <-chan struct{} { return c.done }

// Media is the call's RTP session.
func (c *Call) Media() *Media { return c.media }

// Packets returns the call's per-packet logs: what the phone sent (audio and video) and the
// audio it received (Media.Sent and Media.Received).
func (c *Call) Packets() (sent []SentRecord, received []PacketRecord) {
	return c.media.Sent(), c.media.Received()
}

// LocalSDP is the session description the phone sent last (offer or answer).
func (c *Call) LocalSDP() []byte { return c.d.LocalSDP() }

// RemoteSDP is the session description of the peer.
func (c *Call) RemoteSDP() []byte { return c.d.RemoteSDP() }

// CallID is the dialog's Call-ID.
func (c *Call) CallID() string { return c.d.CallID() }

// Outgoing reports whether the phone placed the call.
func (c *Call) Outgoing() bool { return c.d.Outgoing() }

// Invite is the INVITE that set the call up (sent or received).
func (c *Call) Invite() *sip.Request { return c.d.Invite() }

// Answer is the 2xx that established the call (received or sent).
func (c *Call) Answer() *sip.Response { return c.d.Answer() }

// PRACKs are the final responses to the PRACKs this phone sent while the call was set up.
func (c *Call) PRACKs() []*sip.Response { return c.d.PRACKs() }

// Dialog is the call's SIP dialog (re-INVITE, INFO, session timer...).
func (c *Call) Dialog() *sipua.Dialog { return c.d }

// Hangup sends BYE and waits for its answer. The call ends when the BYE is sent; a non-2xx answer
// is returned as a *StatusError. Hanging up an ended call does nothing.
func (c *Call) Hangup(ctx context.Context) error {
	err := c.d.Hangup(ctx)
	select {
	case <-c.d.Done():
		c.end()
	default:
	}
	return err
}

// track makes the call one of the phone's until its dialog ends.
func (c *Call) track(d *sipua.Dialog) {
	c.d = d
	p := c.p
	p.mu.Lock()
	p.calls[c] = struct{}{}
	p.mu.Unlock()
	if !p.ua.Go(func() {
		<-d.Done()
		c.end()
	}) {
		c.end()
	}
}

// end ends the call once: it leaves the phone's calls, its media stops, Done closes.
func (c *Call) end() {
	c.endOnce.Do(func() {
		c.p.mu.Lock()
		delete(c.p.calls, c)
		c.p.mu.Unlock()
		c.media.close()
		close(c.done) // last: whoever waits on Done finds the call fully stopped
	})
}

// startMedia starts the tone, unless the media is manual or the peer holds the call.
func (c *Call) startMedia() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.p.opts.manualMedia && c.sending {
		c.startLocked()
	}
}

func (c *Call) startLocked() {
	if err := c.media.Start(); err != nil {
		c.p.log.Debug("media start", "rtp", c.media.local, "error", err)
	}
}

// description renders the phone's session description with the next version.
func (c *Call) description(cs []codec, direction string) ([]byte, error) {
	c.mu.Lock()
	ver := c.sdpVer
	c.sdpVer++
	c.mu.Unlock()
	return sessionDescription(c.p.cfg.LocalIP, int(c.media.local.Port()), c.sdpID, ver, cs, direction, c.media.video.line())
}

// handler is how the call follows the peer: a new offer (hold, resume, a new address) is
// answered with the negotiated codec and the matching direction, and an answer in an ACK sets
// the media up.
func (c *Call) handler() sipua.DialogHandler {
	return sipua.DialogHandler{Offer: c.onOffer, Answer: c.onAnswer, Info: c.onInfo}
}

// onInfo takes the INFO requests that are not DTMF: a picture_fast_update (RFC 5168's XML body,
// as FreeSWITCH and video phones send it) asks the video sender for a key frame; others are
// accepted and ignored.
func (c *Call) onInfo(contentType string, body []byte) {
	if c.media.video != nil && strings.Contains(string(body), "picture_fast_update") {
		c.media.video.fastUpdate()
	}
}

func (c *Call) onOffer(offer []byte) ([]byte, error) {
	ra, err := parseAudio(offer)
	if err != nil {
		return nil, err
	}
	cd, ok := negotiate(c.p.codecs, ra.codecs)
	if !ok {
		return nil, ErrNoCommonCodec
	}
	c.media.setRemote(ra, cd)
	dir := answerDirection(ra.direction)
	c.follow(dir)
	return c.description([]codec{cd}, dir)
}

// follow starts or stops sending as the negotiated direction says (hold and resume).
func (c *Call) follow(direction string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sending = direction == "sendrecv" || direction == "sendonly"
	if c.p.opts.manualMedia {
		return
	}
	if c.sending {
		c.startLocked()
	} else {
		c.media.Stop()
	}
}

func (c *Call) onAnswer(answer []byte) {
	ra, err := parseAudio(answer)
	if err != nil {
		c.p.log.Debug("answer in ACK", "error", err)
		return
	}
	if cd, ok := negotiate(c.p.codecs, ra.codecs); ok {
		c.media.setRemote(ra, cd)
		c.startMedia()
	}
}

// Call places a call. target is a user ("1001", sent to the registrar as sip:1001@Domain), or a
// SIP URI ("sip:bob@10.77.0.3:5062", sent to its host directly when that is an IP address). It
// waits for the final response: a 2xx is acknowledged and returns the call, with the tone
// started; a non-2xx returns a *StatusError. 401/407 challenges are answered once with the
// phone's credentials. Reliable provisional responses (Require: 100rel) are PRACKed.
//
// Cancelling ctx before the answer sends CANCEL, once a provisional response has arrived
// (RFC 3261 9.1), and returns the *StatusError of the 487 joined with ctx's error.
func (p *Phone) Call(ctx context.Context, target string, opts ...CallOption) (*Call, error) {
	var cc callConfig
	for _, opt := range opts {
		opt(&cc)
	}
	media, err := p.newMedia()
	if err != nil {
		return nil, err
	}
	c := newCall(p, media)
	offer, err := c.description(p.codecs, "sendrecv")
	if err != nil {
		media.close()
		return nil, fmt.Errorf("sipphone: offer: %w", err)
	}
	d, err := p.ua.Invite(ctx, p.cfg.User, target, offer, append(cc.invite, sipua.WithHandler(c.handler()))...)
	if err != nil {
		media.close()
		return nil, err
	}
	c.track(d)
	ra, err := parseAudio(d.RemoteSDP())
	if err == nil {
		if cd, ok := negotiate(p.codecs, ra.codecs); ok {
			media.setRemote(ra, cd)
			c.startMedia()
			return c, nil
		}
		err = ErrNoCommonCodec
	}
	// Established but useless: end it properly.
	_ = c.Hangup(ctx)
	return nil, fmt.Errorf("sipphone: answer of %s: %w", d.Invite().Recipient.String(), err)
}
