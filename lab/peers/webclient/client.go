package webclient

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/transport/v5"
	"github.com/pion/webrtc/v4"

	"github.com/siprtc/siprtc/gateway/rtc"
	"github.com/siprtc/siprtc/gateway/signaling"
)

// DialFunc opens the stream connection the WebSocket runs on: a net.Dialer's DialContext on a
// real network, the lab's Host.Stream.DialContext on the emulated one.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// Config describes one client. URL and Token are needed to connect; the rest have defaults.
type Config struct {
	// URL is the gateway's signalling endpoint, ws://host:port/ws.
	URL string
	// Dial opens the WebSocket's connection; nil is a net.Dialer on the real network.
	Dial DialFunc
	// Net opens every ICE socket (SettingEngine.SetNet); nil is the standard network.
	Net transport.Net
	// LocalIP, when valid, is the only address ICE gathers host candidates on (a loopback
	// address is then allowed: 127.0.0.1 keeps a test on loopback).
	LocalIP netip.Addr
	// User is who the client expects to be; the token decides (Connect checks they agree when
	// User is set).
	User string
	// Token is the login token (signaling.MakeToken).
	Token string
	// Codecs is the audio preference, lower case: "pcmu", "pcma", "opus". Default pcmu, pcma:
	// formats whose content the client can check.
	Codecs []string
	// Video adds a synthetic VP8 video source to every call. Without it the client still
	// receives the video it is offered (it answers receive-only, as a browser without camera).
	Video bool
	// Logger gets the client's and pion's logs; nil discards them.
	Logger *slog.Logger
}

// Option tunes a client beyond its Config.
type Option func(*options)

type options struct {
	toneHz        float64
	autoAccept    bool
	acceptDelay   time.Duration
	videoBitrate  int
	videoFPS      int
	keyFrameEvery time.Duration
	videoCodec    string // "vp8" or "h264"
	opusBitrate   int
	logLimit      int
	seed          uint64
	rtcTweaks     []func(*rtc.Config)
	bwe           *rtc.BWEConfig
	red           *int    // RED distance (WithRED)
	flexFEC       *[2]int // media and FEC packets (WithFlexFEC)
	audioRTX      bool    // WithAudioRTX
}

func defaultOptions() options {
	return options{
		toneHz: 1000, autoAccept: true,
		videoBitrate: 500_000, videoFPS: 30, keyFrameEvery: 3 * time.Second, videoCodec: "vp8",
		opusBitrate: 32_000, logLimit: 100_000, seed: 1,
	}
}

// WithTone sets the frequency of the audio tone (default 1000 Hz).
func WithTone(hz float64) Option { return func(o *options) { o.toneHz = hz } }

// WithAutoAccept makes the default invitation handler accept after delay (default: at once).
func WithAutoAccept(delay time.Duration) Option {
	return func(o *options) { o.autoAccept, o.acceptDelay = true, delay }
}

// WithoutAutoAccept makes the default invitation handler only acknowledge (received) and
// leave the invitation ringing, for tests that answer through Client.Invitations or time out.
func WithoutAutoAccept() Option { return func(o *options) { o.autoAccept = false } }

// WithVideo sets the synthetic video's target bitrate (bit/s, default 500 kbit/s), frame rate
// (default 30) and key frame interval (default 3 s); zero keeps a default.
func WithVideo(bitrate, fps int, keyFrameEvery time.Duration) Option {
	return func(o *options) {
		if bitrate > 0 {
			o.videoBitrate = bitrate
		}
		if fps > 0 {
			o.videoFPS = fps
		}
		if keyFrameEvery > 0 {
			o.keyFrameEvery = keyFrameEvery
		}
	}
}

// WithVideoCodec sets the one video codec the client registers, offers, accepts and (with
// Config.Video) sends: "vp8" (the default, internal/vp8synth's video) or "h264" (packetization-mode
// 1, constrained baseline: internal/h264synth's video, whose NAL units the client checks as it
// receives them, VideoStats.NALUnits).
func WithVideoCodec(name string) Option {
	return func(o *options) { o.videoCodec = strings.ToLower(name) }
}

// WithOpusBitrate sets the size of the silent Opus packets sent when Opus is negotiated
// (default 32 kbit/s: 80-byte packets).
func WithOpusBitrate(bps int) Option { return func(o *options) { o.opusBitrate = bps } }

// WithPacketLog bounds each per-packet log (sent, received) of a call (default 100000).
func WithPacketLog(limit int) Option { return func(o *options) { o.logLimit = limit } }

// WithSeed seeds the media sources' random choices (initial sequence numbers and timestamps,
// video frame sizes); default 1.
func WithSeed(seed uint64) Option { return func(o *options) { o.seed = seed } }

// WithBWE turns on send-side bandwidth estimation (pion's gcc, see rtc.BWEConfig) for every call:
// the client's packets go through the estimator's pacer, the synthetic video's bitrate follows
// the target (what the audio leaves of it, from MinVideoBitrate up to the WithVideo bitrate,
// which becomes the encoder's maximum), and the call records the estimate every 100 ms
// (Call.BWESamples). Call.BWE is the estimator.
func WithBWE(cfg rtc.BWEConfig) Option {
	return func(o *options) { o.bwe = &cfg }
}

// WithRED sends Opus RFC 2198 RED-framed, each packet repeating the distance previous frames
// (0: gateway/rtc's default, 1; at most rtc.MaxREDDistance), when the other side accepts
// red/48000/2, as Chrome does; RED received is decoded, the frames it recovers logged as
// Repaired "red". It needs opus among Config.Codecs.
func WithRED(distance int) Option {
	return func(o *options) { o.red = &distance }
}

// WithFlexFEC protects the client's video with FlexFEC-03 (pion's encoder: numFEC FEC packets
// for every numMedia media packets; 0: gateway/rtc's defaults, 2 for 5) when the other side
// accepts flexfec-03, and recovers the video it receives from the FlexFEC the other side sends
// (logged as Repaired "fec"). With WithBWE the video bitrate leaves room for the FEC packets.
func WithFlexFEC(numMedia, numFEC int) Option {
	return func(o *options) { o.flexFEC = &[2]int{numMedia, numFEC} }
}

// WithAudioRTX registers RTX (RFC 4588) for the client's audio codecs, which no browser does:
// the client offers and accepts audio rtx, sends its audio retransmissions over RTX when the
// other side accepts it (its descriptions carry the a=ssrc-group:FID that pion leaves out for
// audio, see rtc.Config.SendAudioRTX) and receives the other side's audio RTX. Off by default:
// the lab's measurements expect a browser's audio, NACK with retransmission in the stream.
func WithAudioRTX() Option { return func(o *options) { o.audioRTX = true } }

// WithNACK tunes the client's NACK generator: how often it reports missing packets (0: pion's
// 100 ms) and how many times it asks for one packet (0: as long as it is in the receive log).
func WithNACK(interval time.Duration, maxRetries uint16) Option {
	return WithRTC(func(c *rtc.Config) { c.NACKInterval, c.NACKMaxRetries = interval, maxRetries })
}

// WithRTC adjusts the gateway/rtc configuration each call's PeerConnection is built from (ICE
// timeouts, NACK buffer, ...), after the client has filled it in.
func WithRTC(f func(*rtc.Config)) Option {
	return func(o *options) { o.rtcTweaks = append(o.rtcTweaks, f) }
}

// Event is one message the gateway sent, as the client saw it.
type Event struct {
	At       time.Time
	Type     string // localInvitation, remoteInvitation, sdp, candidate, dtmf, hangup, kicked, ok, error
	ID       string // the request id of an ok or error reply
	CallID   string
	State    string // invitation state
	Code     string // failure code, or error code
	SIPCode  int
	Reason   string
	Response string
	Message  string
	Caller   string
	Callee   string
	Digit    string
	Duration time.Duration
	Raw      string // the JSON text
}

// inMsg is any message from the gateway.
type inMsg struct {
	Type        string                        `json:"type"`
	ID          string                        `json:"id"`
	Code        string                        `json:"code"`
	Message     string                        `json:"message"`
	CallID      string                        `json:"callId"`
	Callee      string                        `json:"callee"`
	Caller      string                        `json:"caller"`
	State       string                        `json:"state"`
	SIPCode     int                           `json:"sipCode"`
	Reason      string                        `json:"reason"`
	Response    string                        `json:"response"`
	Content     string                        `json:"content"`
	ChannelID   string                        `json:"channelId"`
	User        string                        `json:"user"`
	SessionID   string                        `json:"sessionId"`
	Description *signaling.SessionDescription `json:"description"`
	Candidate   *signaling.ICECandidate       `json:"candidate"`
	Digit       string                        `json:"digit"`
	Duration    int64                         `json:"duration"`
}

// outMsg is any request to the gateway.
type outMsg struct {
	Type        string                        `json:"type"`
	ID          string                        `json:"id"`
	Token       string                        `json:"token,omitempty"`
	CallID      string                        `json:"callId,omitempty"`
	Callee      string                        `json:"callee,omitempty"`
	Content     string                        `json:"content,omitempty"`
	ChannelID   string                        `json:"channelId,omitempty"`
	Response    string                        `json:"response,omitempty"`
	SIPCode     int                           `json:"sipCode,omitempty"`
	Description *signaling.SessionDescription `json:"description,omitempty"`
	Candidate   json.RawMessage               `json:"candidate,omitempty"` // null: end-of-candidates
	Digit       string                        `json:"digit,omitempty"`
	Duration    int64                         `json:"duration,omitempty"`
	Reason      string                        `json:"reason,omitempty"`
}

// pendingRequest waits for its reply. onReply runs on the reader goroutine before the next
// message is read, so what it registers (a call id) is in place for the events that follow.
type pendingRequest struct {
	reply   chan inMsg // nil for requests nobody waits for
	onReply func(inMsg)
}

// Client is one signalling session and its calls.
type Client struct {
	cfg    Config
	opts   options
	log    *slog.Logger
	rtcCfg rtc.Config
	media  mediaConfig
	ctx    context.Context
	cancel context.CancelFunc

	mu           sync.Mutex
	closed       bool
	ws           *websocket.Conn
	hc           *http.Client
	connDone     chan struct{} // closed when the current connection ends
	readerDone   chan struct{}
	connErr      error
	user         string
	sessionID    string
	nextID       uint64
	pending      map[string]*pendingRequest
	calls        map[string]*Call
	events       []Event
	eventsChange chan struct{}
	onInvitation func(*Invitation)
	invitations  chan *Invitation
	wg           sync.WaitGroup
}

// New builds a client; Connect logs it in.
func New(cfg Config, opts ...Option) (*Client, error) {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	if cfg.URL == "" {
		return nil, fmt.Errorf("%w: no URL", ErrInvalidConfig)
	}
	if cfg.Dial == nil {
		cfg.Dial = (&net.Dialer{}).DialContext
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	audio := cfg.Codecs
	if len(audio) == 0 {
		audio = []string{"pcmu", "pcma"}
	}
	for _, name := range audio {
		switch name {
		case "pcmu", "pcma", "opus":
		default:
			return nil, fmt.Errorf("%w: codec %q: the client sends pcmu, pcma or opus", ErrInvalidConfig, name)
		}
	}
	// The video codec (VP8 unless WithVideoCodec) is always registered: offered video is
	// received (receive-only without Config.Video, as a browser without a camera answers);
	// Config.Video adds the client's own video source.
	if o.videoCodec != "vp8" && o.videoCodec != "h264" {
		return nil, fmt.Errorf("%w: video codec %q: the client sends vp8 or h264", ErrInvalidConfig, o.videoCodec)
	}
	codecs := append(slices.Clone(audio), o.videoCodec)
	rc := rtc.Config{Net: cfg.Net, Codecs: codecs, Video: true, SendTWCC: true, LoggerFactory: pionLogs{log: log},
		NoAudioRTX: !o.audioRTX, SendAudioRTX: o.audioRTX}
	if ip := cfg.LocalIP.Unmap(); ip.IsValid() {
		rc.IPFilter = func(a netip.Addr) bool { return a == ip }
		rc.IncludeLoopback = ip.IsLoopback()
	}
	if o.bwe != nil {
		bc := *o.bwe
		rc.BWE = &bc
	}
	if o.red != nil {
		rc.RED, rc.REDDistance = true, *o.red
	}
	if o.flexFEC != nil {
		rc.FlexFEC, rc.FECMediaPackets, rc.FECPackets = true, o.flexFEC[0], o.flexFEC[1]
	}
	for _, f := range o.rtcTweaks {
		f(&rc)
	}
	if o.toneHz <= 0 || o.toneHz >= 4000 {
		return nil, fmt.Errorf("%w: tone %v Hz: want 0 < f < 4000 (G.711's band)", ErrInvalidConfig, o.toneHz)
	}
	mc := mediaConfig{
		toneHz: o.toneHz, videoBitrate: o.videoBitrate, videoFPS: o.videoFPS, keyFrameEvery: o.keyFrameEvery,
		opusBytes: max(o.opusBitrate/8/50, 3), logLimit: o.logLimit, seed: o.seed, log: log,
		bwe: rc.BWE != nil,
	}
	if rc.FlexFEC {
		// The share of the video's packets that are media, for the bitrate under BWE.
		n, k := rc.FECMediaPackets, rc.FECPackets
		if n == 0 {
			n = rtc.DefaultFECMediaPackets
		}
		if k == 0 {
			k = rtc.DefaultFECPackets
		}
		mc.mediaShare = float64(n) / float64(n+k)
	}
	if rc.RED {
		mc.redDistance = max(rc.REDDistance, rtc.DefaultREDDistance)
	}
	for _, c := range rc.SupportedCodecs() {
		switch {
		case c.IsTelephoneEvent():
		case c.Kind() == webrtc.RTPCodecTypeAudio:
			mc.audio = append(mc.audio, c)
		case cfg.Video && c.Kind() == webrtc.RTPCodecTypeVideo && strings.EqualFold(c.Name, o.videoCodec):
			mc.video = &c
		}
	}
	if _, err := rtc.NewAPI(rc); err != nil { // fail now, not at the first call
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Client{
		cfg: cfg, opts: o, log: log.With("client", cfg.User), rtcCfg: rc, media: mc, ctx: ctx, cancel: cancel,
		pending: map[string]*pendingRequest{}, calls: map[string]*Call{}, eventsChange: make(chan struct{}),
		invitations: make(chan *Invitation, 16),
	}, nil
}

// Connect opens the WebSocket (unless it is open) and logs in with Config.Token.
func (cl *Client) Connect(ctx context.Context) error {
	if err := cl.dial(ctx); err != nil {
		return err
	}
	return cl.Login(ctx, cl.cfg.Token)
}

func (cl *Client) dial(ctx context.Context) error {
	cl.mu.Lock()
	if cl.closed {
		cl.mu.Unlock()
		return ErrClosed
	}
	if cl.ws != nil {
		cl.mu.Unlock()
		return nil
	}
	cl.mu.Unlock()
	hc := &http.Client{Transport: &http.Transport{DialContext: cl.cfg.Dial, DisableKeepAlives: true}}
	ws, _, err := websocket.Dial(ctx, cl.cfg.URL, &websocket.DialOptions{
		HTTPClient: hc, Subprotocols: []string{signaling.Subprotocol},
	})
	if err != nil {
		return fmt.Errorf("webclient: connect %s: %w", cl.cfg.URL, err)
	}
	ws.SetReadLimit(1 << 20)
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.closed || cl.ws != nil {
		_ = ws.CloseNow()
		if cl.closed {
			return ErrClosed
		}
		return nil
	}
	cl.ws, cl.hc, cl.connErr = ws, hc, nil
	cl.connDone, cl.readerDone = make(chan struct{}), make(chan struct{})
	go cl.read(ws, cl.connDone, cl.readerDone)
	return nil
}

// Login logs in with token on the open connection. A refused login keeps the connection, so
// another token may be tried (the gateway closes it after three failures).
func (cl *Client) Login(ctx context.Context, token string) error {
	reply, err := cl.request(ctx, outMsg{Type: signaling.TypeLogin, Token: token}, nil)
	if err != nil {
		return err
	}
	cl.mu.Lock()
	cl.user, cl.sessionID = reply.User, reply.SessionID
	cl.mu.Unlock()
	if cl.cfg.User != "" && reply.User != cl.cfg.User {
		return fmt.Errorf("%w: logged in as %q, configured as %q", ErrInvalidConfig, reply.User, cl.cfg.User)
	}
	cl.log.Debug("webclient: logged in", "user", reply.User, "session", reply.SessionID)
	return nil
}

// Logout ends the session (its calls end first) and keeps the connection.
func (cl *Client) Logout(ctx context.Context) error {
	_, err := cl.request(ctx, outMsg{Type: signaling.TypeLogout}, nil)
	if err == nil {
		cl.mu.Lock()
		cl.user, cl.sessionID = "", ""
		cl.mu.Unlock()
	}
	return err
}

// User is the logged-in user ("" before login).
func (cl *Client) User() string {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.user
}

// SessionID is the gateway's id of the session.
func (cl *Client) SessionID() string {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.sessionID
}

// Disconnected is closed when the current connection ends (nil before Connect); Err says why.
func (cl *Client) Disconnected() <-chan struct{} {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.connDone
}

// Err is why the last connection ended: the WebSocket close (websocket.CloseStatus gives the
// code, e.g. 4001 when kicked), or nil while it is up.
func (cl *Client) Err() error {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.connErr
}

// OnInvitation sets what happens to remote invitations: f runs on its own goroutine for each.
// nil restores the default: acknowledge, then accept (see WithAutoAccept, WithoutAutoAccept).
func (cl *Client) OnInvitation(f func(*Invitation)) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	cl.onInvitation = f
}

// Invitations delivers the remote invitations the default handler leaves ringing
// (WithoutAutoAccept); up to 16 wait for a reader, later ones are only logged.
func (cl *Client) Invitations() <-chan *Invitation { return cl.invitations }

// Events returns every message the gateway has sent so far, in order.
func (cl *Client) Events() []Event {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return slices.Clone(cl.events)
}

// WaitEvent waits for a gateway message that match accepts (one already received counts).
func (cl *Client) WaitEvent(ctx context.Context, match func(Event) bool) (Event, error) {
	seen := 0
	for {
		cl.mu.Lock()
		events, ch := cl.events[seen:], cl.eventsChange
		seen = len(cl.events)
		for _, e := range events {
			if match(e) {
				cl.mu.Unlock()
				return e, nil
			}
		}
		cl.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return Event{}, ctx.Err()
		case <-cl.ctx.Done():
			return Event{}, ErrClosed
		}
	}
}

// Calls returns the calls in progress.
func (cl *Client) Calls() []*Call {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	out := make([]*Call, 0, len(cl.calls))
	for _, c := range cl.calls {
		out = append(out, c)
	}
	return out
}

// Close closes the connection (the gateway ends the session and its calls), ends every call
// and waits for every goroutine the client started.
func (cl *Client) Close() error {
	cl.mu.Lock()
	if cl.closed {
		cl.mu.Unlock()
		return nil
	}
	cl.closed = true
	ws, readerDone, hc := cl.ws, cl.readerDone, cl.hc
	cl.mu.Unlock()
	if ws != nil {
		_ = ws.Close(websocket.StatusNormalClosure, "client closed")
	}
	cl.cancel()
	if readerDone != nil {
		<-readerDone
	}
	for _, c := range cl.Calls() {
		c.finish("client closed")
	}
	cl.wg.Wait()
	if hc != nil {
		hc.CloseIdleConnections()
	}
	return nil
}

// goTracked runs f on a goroutine Close waits for; false once the client is closed.
func (cl *Client) goTracked(f func()) bool {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.closed {
		return false
	}
	cl.wg.Add(1)
	go func() {
		defer cl.wg.Done()
		f()
	}()
	return true
}

// request sends m with a fresh id and waits for its reply: an *Error for an error reply.
func (cl *Client) request(ctx context.Context, m outMsg, onReply func(inMsg)) (inMsg, error) {
	p := &pendingRequest{reply: make(chan inMsg, 1), onReply: onReply}
	connDone, err := cl.send(&m, p)
	if err != nil {
		return inMsg{}, err
	}
	select {
	case r := <-p.reply:
		if r.Type == signaling.TypeError {
			return r, &Error{Code: r.Code, Message: r.Message}
		}
		return r, nil
	case <-ctx.Done():
		cl.forget(m.ID)
		return inMsg{}, ctx.Err()
	case <-connDone:
		return inMsg{}, cl.connectionLost()
	}
}

// post sends m without waiting; an error reply is logged.
func (cl *Client) post(m outMsg) {
	p := &pendingRequest{onReply: func(r inMsg) {
		if r.Type == signaling.TypeError {
			cl.log.Warn("webclient: request refused", "type", m.Type, "call", m.CallID, "code", r.Code, "message", r.Message)
		}
	}}
	if _, err := cl.send(&m, p); err != nil {
		cl.log.Debug("webclient: request not sent", "type", m.Type, "err", err)
	}
}

func (cl *Client) send(m *outMsg, p *pendingRequest) (<-chan struct{}, error) {
	cl.mu.Lock()
	if cl.closed {
		cl.mu.Unlock()
		return nil, ErrClosed
	}
	ws, connDone := cl.ws, cl.connDone
	if ws == nil {
		cl.mu.Unlock()
		return nil, ErrNotConnected
	}
	cl.nextID++
	m.ID = strconv.FormatUint(cl.nextID, 10)
	cl.pending[m.ID] = p
	cl.mu.Unlock()
	data, err := json.Marshal(m)
	if err == nil {
		// The client's context, not the request's: coder/websocket closes the connection
		// when a write's context ends.
		err = ws.Write(cl.ctx, websocket.MessageText, data)
	}
	if err != nil {
		cl.forget(m.ID)
		return nil, fmt.Errorf("webclient: send %s: %w", m.Type, err)
	}
	return connDone, nil
}

func (cl *Client) forget(id string) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	delete(cl.pending, id)
}

func (cl *Client) connectionLost() error {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.closed {
		return ErrClosed
	}
	return fmt.Errorf("%w: %w", ErrNotConnected, cl.connErr)
}

// read is the connection's reader: it answers the gateway's pings (by reading), resolves
// replies and hands events to their calls.
func (cl *Client) read(ws *websocket.Conn, connDone, readerDone chan struct{}) {
	defer close(readerDone)
	for {
		_, data, err := ws.Read(cl.ctx)
		if err != nil {
			cl.connectionEnded(ws, connDone, err)
			return
		}
		var m inMsg
		if err := json.Unmarshal(data, &m); err != nil {
			cl.log.Warn("webclient: malformed message from the gateway", "err", err)
			continue
		}
		cl.record(m, string(data))
		cl.dispatch(m)
	}
}

func (cl *Client) record(m inMsg, raw string) {
	e := Event{
		At: time.Now(), Type: m.Type, ID: m.ID, CallID: m.CallID, State: m.State, Code: m.Code,
		SIPCode: m.SIPCode, Reason: m.Reason, Response: m.Response, Message: m.Message,
		Caller: m.Caller, Callee: m.Callee, Digit: m.Digit, Duration: time.Duration(m.Duration) * time.Millisecond, Raw: raw,
	}
	cl.mu.Lock()
	defer cl.mu.Unlock()
	cl.events = append(cl.events, e)
	close(cl.eventsChange)
	cl.eventsChange = make(chan struct{})
}

func (cl *Client) dispatch(m inMsg) {
	switch m.Type {
	case signaling.TypeOK, signaling.TypeError:
		cl.mu.Lock()
		p := cl.pending[m.ID]
		delete(cl.pending, m.ID)
		cl.mu.Unlock()
		switch {
		case p != nil:
			if p.onReply != nil {
				p.onReply(m)
			}
			if p.reply != nil {
				p.reply <- m
			}
		case m.Type == signaling.TypeError:
			cl.log.Warn("webclient: gateway error", "id", m.ID, "code", m.Code, "message", m.Message)
		}
	case signaling.TypeKicked:
		cl.log.Info("webclient: kicked", "reason", m.Reason)
	case signaling.TypeLocalInvitation, signaling.TypeRemoteInvitation, signaling.TypeSDP, signaling.TypeCandidate, signaling.TypeDTMF, signaling.TypeHangup:
		cl.mu.Lock()
		c := cl.calls[m.CallID]
		cl.mu.Unlock()
		switch {
		case c != nil:
			c.deliver(m)
		case m.Type == signaling.TypeRemoteInvitation && m.State == string(signaling.RemoteInvitationReceived):
			cl.invited(m)
		default:
			cl.log.Debug("webclient: event for no call", "type", m.Type, "call", m.CallID)
		}
	default:
		cl.log.Debug("webclient: unknown message", "type", m.Type)
	}
}

// connectionEnded ends what a connection carried: waiting requests fail, calls end (the gateway
// ends them with the session).
func (cl *Client) connectionEnded(ws *websocket.Conn, connDone chan struct{}, err error) {
	cl.mu.Lock()
	if cl.ws == ws {
		cl.ws, cl.user, cl.sessionID = nil, "", ""
	}
	cl.connErr = err
	clear(cl.pending)
	cl.mu.Unlock()
	close(connDone)
	_ = ws.CloseNow()
	cl.log.Debug("webclient: connection ended", "err", err)
	for _, c := range cl.Calls() {
		c.finish("connection closed")
	}
}

// register makes c reachable by its call id (unless it already ended).
func (cl *Client) register(c *Call) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if !c.isFinished() {
		cl.calls[c.ID()] = c
	}
}

func (cl *Client) unregister(c *Call) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if id := c.ID(); id != "" && cl.calls[id] == c {
		delete(cl.calls, id)
	}
}

// invited takes a new remote invitation: its call, and the handler.
func (cl *Client) invited(m inMsg) {
	c := cl.newCall(false, m.Caller)
	if c == nil {
		return
	}
	inv := &Invitation{call: c, Caller: m.Caller, Content: m.Content, ChannelID: m.ChannelID}
	if m.Description != nil {
		d := *m.Description
		inv.Offer = &d
	}
	c.mu.Lock()
	c.id, c.offer, c.invited = m.CallID, m.Description, time.Now()
	c.mu.Unlock()
	c.recordState(m)
	cl.register(c)
	cl.mu.Lock()
	handler := cl.onInvitation
	cl.mu.Unlock()
	if handler == nil {
		handler = cl.defaultInvitationHandler
	}
	cl.goTracked(func() { handler(inv) })
}

// defaultInvitationHandler acknowledges at once (the gateway then sends SIP 180), then
// accepts after the configured delay, or hands the invitation to Invitations.
func (cl *Client) defaultInvitationHandler(inv *Invitation) {
	ctx := cl.ctx
	if err := inv.Received(ctx); err != nil {
		cl.log.Debug("webclient: received not sent", "call", inv.call.ID(), "err", err)
		return
	}
	if !cl.opts.autoAccept {
		select {
		case cl.invitations <- inv:
		default:
			cl.log.Warn("webclient: invitation queue full", "call", inv.call.ID())
		}
		return
	}
	if d := cl.opts.acceptDelay; d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-inv.call.Done():
			return
		case <-ctx.Done():
			return
		}
	}
	if _, err := inv.Accept(ctx, ""); err != nil {
		cl.log.Debug("webclient: auto-accept failed", "call", inv.call.ID(), "err", err)
	}
}
