package interop_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/coder/websocket"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/siprtc/siprtc/gateway/call"
	"github.com/siprtc/siprtc/gateway/signaling"
	"github.com/siprtc/siprtc/gateway/sipua"
	"github.com/siprtc/siprtc/lab"
	"github.com/siprtc/siprtc/lab/netem"
	"github.com/siprtc/siprtc/lab/pbx"
	"github.com/siprtc/siprtc/lab/peers/webclient"
)

// rawClient speaks the signalling protocol byte by byte, to send what a well-behaved client
// never would.
type rawClient struct {
	conn *websocket.Conn
	tr   *http.Transport
}

func (w *world) raw(ctx context.Context) (*rawClient, error) {
	tr := &http.Transport{DialContext: w.hosts["client"].dialer}
	conn, _, err := websocket.Dial(ctx, "ws://"+w.httpAddr+signaling.Path, &websocket.DialOptions{HTTPClient: &http.Client{Transport: tr}})
	if err != nil {
		return nil, err
	}
	conn.SetReadLimit(1 << 20)
	return &rawClient{conn: conn, tr: tr}, nil
}

func (r *rawClient) close() {
	_ = r.conn.Close(websocket.StatusNormalClosure, "")
	r.tr.CloseIdleConnections()
}

// reply is a message of the gateway, as far as these specs read it.
type reply struct {
	Type    string `json:"type"`
	ID      string `json:"id"`
	Code    string `json:"code"`
	Message string `json:"message"`
	State   string `json:"state"`
}

// send writes text and returns the first reply carrying id (any reply when id is "").
func (r *rawClient) send(ctx context.Context, text, id string) (reply, error) {
	if err := r.conn.Write(ctx, websocket.MessageText, []byte(text)); err != nil {
		return reply{}, err
	}
	for {
		_, b, err := r.conn.Read(ctx)
		if err != nil {
			return reply{}, err
		}
		var m reply
		if err := json.Unmarshal(b, &m); err != nil {
			return reply{}, err
		}
		if (m.Type == "ok" || m.Type == "error") && (id == "" || m.ID == id) {
			return m, nil
		}
	}
}

var _ = Describe("Signalling input the gateway must survive", Label("interop"), func() {
	for _, n := range networks {
		Context("over "+n.name, func() {
			It("answers bad input with errors, keeps the connection, and leaks no call or goroutine", func() {
				type badReport struct {
					Replies                        map[string]reply
					UnknownCallee                  string
					ActiveCalls, PBXCalls, Healthz int
					SignalingCalls                 int64
				}
				if pbx.IsContainer(n.backend) {
					// The shared container's control connection outlives the world: start it
					// before counting.
					lab.UseBackend(n.backend)
					_, err := sharedPBX(n.backend)
					Expect(err).NotTo(HaveOccurred())
				}
				before := goroutines()
				rep, err := inWorld(n, func(w *world) (badReport, error) {
					rep := badReport{Replies: map[string]reply{}}
					ctx, cancel := context.WithTimeout(w.ctx, 20*time.Second)
					defer cancel()
					rc, err := w.raw(ctx)
					if err != nil {
						return rep, err
					}
					defer rc.close()
					steps := []struct{ name, text, id string }{
						{"bad token", `{"type":"login","id":"1","token":"bm90LWEtdG9rZW4"}`, "1"},
						{"malformed JSON", `{"type":"login","id":`, ""},
						{"login", fmt.Sprintf(`{"type":"login","id":"2","token":%q}`, w.Token("mallory")), "2"},
						{"oversize content", fmt.Sprintf(`{"type":"invite","id":"3","callee":"1001","content":%q}`, strings.Repeat("x", signaling.MaxContentBytes+1)), "3"},
						{"oversize channel id", fmt.Sprintf(`{"type":"invite","id":"4","callee":"1001","channelId":%q}`, strings.Repeat("c", signaling.MaxChannelIDBytes+1)), "4"},
						{"unknown type", `{"type":"selfDestruct","id":"5"}`, "5"},
						{"invalid callee", `{"type":"invite","id":"6","callee":"no such user"}`, "6"},
						{"invite without offer", `{"type":"invite","id":"7","callee":"1001"}`, "7"},
						{"bad offer", `{"type":"invite","id":"8","callee":"1001","description":{"type":"offer","sdp":"not sdp"}}`, "8"},
						{"hangup of no call", `{"type":"hangup","id":"9","callId":"NOPE"}`, "9"},
						{"still alive", `{"type":"logout","id":"10"}`, "10"},
					}
					for _, s := range steps {
						m, err := rc.send(ctx, s.text, s.id)
						if err != nil {
							return rep, fmt.Errorf("%s: %w", s.name, err)
						}
						rep.Replies[s.name] = m
					}
					By("a well-formed call to a number nobody has")
					cl, err := w.client("alice")
					if err != nil {
						return rep, err
					}
					c, err := cl.Call(ctx, "7777")
					if err != nil {
						return rep, err
					}
					<-c.Done()
					rep.UnknownCallee = c.EndReason()
					if err := w.quiesce(); err != nil {
						return rep, err
					}
					rep.ActiveCalls, rep.PBXCalls = w.gw.ActiveCalls(), w.pbxCalls()
					rep.SignalingCalls = w.gw.Signaling().Metrics().Snapshot().Calls
					rep.Healthz, _, _ = w.health()
					return rep, nil
				})
				Expect(err).NotTo(HaveOccurred())
				code := func(name string) string { return rep.Replies[name].Type + " " + rep.Replies[name].Code }
				Expect(code("bad token")).To(Equal("error INVALID_TOKEN"))
				Expect(code("malformed JSON")).To(Equal("error INVALID_MESSAGE"))
				Expect(code("login")).To(Equal("ok "))
				Expect(code("oversize content")).To(Equal("error INVALID_ARGUMENT"))
				Expect(code("oversize channel id")).To(Equal("error INVALID_ARGUMENT"))
				Expect(code("unknown type")).To(Equal("error UNKNOWN_TYPE"))
				Expect(code("invalid callee")).To(Equal("error INVALID_ARGUMENT"))
				Expect(code("invite without offer")).To(Equal("error INVALID_ARGUMENT"))
				Expect(code("bad offer")).To(Equal("error INVALID_ARGUMENT"))
				Expect(code("hangup of no call")).To(Equal("error UNKNOWN_CALL"))
				Expect(code("still alive")).To(Equal("ok "), "the connection survives every bad message")
				Expect(rep.UnknownCallee).To(Equal("FAILURE PEER_OFFLINE 404"))
				Expect(rep.ActiveCalls).To(BeZero())
				Expect(rep.PBXCalls).To(BeZero())
				Expect(rep.SignalingCalls).To(BeZero())
				Expect(rep.Healthz).To(Equal(http.StatusOK))
				if !n.emulated { // a bubble already fails on any goroutine left behind
					Eventually(goroutines).WithTimeout(5*time.Second).Should(BeNumerically("<=", before+2), "goroutines left after the world closed")
				}
			})
		})
	}
})

var _ = Describe("Calls with no codec in common", Label("interop"), func() {
	for _, n := range networks {
		Context("over "+n.name, func() {
			if n.asterisk() {
				// Asterisk differs, legitimately: it is a B2BUA that transcodes (the configuration's
				// codec list has Opus, so codec_opus_open_source is loaded), and offers the gateway
				// its own codecs rather than the phone's. The gateway's SIP leg then has Opus in
				// common with Asterisk and takes the call: what has no common codec is the client,
				// which refuses the invitation, and the refusal reaches the caller.
				It("reach the client through Asterisk, which transcodes the phone's G.711 to Opus; the client's G.711 invite gets an error", func() {
					type codecReport struct {
						Invited   bool
						PhoneCode int
						InviteErr string
						Records   []call.Record
						GWCalls   int
					}
					rep, err := inWorld(n, func(w *world) (codecReport, error) {
						var rep codecReport
						phone, err := w.phone("1001")
						if err != nil {
							return rep, err
						}
						cl, err := w.client("bob")
						if err != nil {
							return rep, err
						}
						ctx, cancel := context.WithTimeout(w.ctx, 20*time.Second)
						defer cancel()
						invited := make(chan struct{}, 1)
						cl.OnInvitation(func(inv *webclient.Invitation) {
							invited <- struct{}{}
							_ = inv.Refuse(ctx, "no common codec", 486)
						})
						res := <-dial(ctx, phone, "0bob", make(chan int, 8))
						rep.PhoneCode = sipua.StatusCode(res.err)
						select {
						case <-invited:
							rep.Invited = true
						default:
						}
						if _, err := cl.Call(ctx, "1001"); err != nil {
							rep.InviteErr = err.Error()
						}
						if err := w.quiesce(); err != nil {
							return rep, err
						}
						rep.Records, rep.GWCalls = w.records(), w.gw.ActiveCalls()
						return rep, nil
					}, withCodecs("opus,vp8"))
					Expect(err).NotTo(HaveOccurred())
					Expect(rep.Invited).To(BeTrue(), "the gateway takes Asterisk's Opus offer and invites the client")
					Expect(rep.PhoneCode).To(Equal(486), "the client's refusal reaches the phone")
					Expect(rep.Records).To(ConsistOf(And(HaveField("Outcome", call.OutcomeRefused), HaveField("SIPCode", 486))))
					Expect(rep.InviteErr).To(ContainSubstring("INVALID_ARGUMENT"))
					Expect(rep.InviteErr).To(ContainSubstring("no common codec"))
					Expect(rep.GWCalls).To(BeZero())
				})
				return
			}
			It("are refused on both sides: 488 to the SIP caller, an error to the client's invite", func() {
				type codecReport struct {
					PhoneCode int
					InviteErr string
					Records   int
					GWCalls   int
				}
				// The gateway only takes Opus; the phone and the client only G.711.
				rep, err := inWorld(n, func(w *world) (codecReport, error) {
					var rep codecReport
					phone, err := w.phone("1001")
					if err != nil {
						return rep, err
					}
					cl, err := w.client("bob")
					if err != nil {
						return rep, err
					}
					ctx, cancel := context.WithTimeout(w.ctx, 20*time.Second)
					defer cancel()
					res := <-dial(ctx, phone, "0bob", make(chan int, 8))
					rep.PhoneCode = sipua.StatusCode(res.err)
					if _, err := cl.Call(ctx, "1001"); err != nil {
						rep.InviteErr = err.Error()
					}
					rep.Records, rep.GWCalls = len(w.records()), w.gw.ActiveCalls()
					return rep, w.quiesce()
				}, withCodecs("opus,vp8"))
				Expect(err).NotTo(HaveOccurred())
				Expect(rep.PhoneCode).To(Equal(488))
				Expect(rep.InviteErr).To(ContainSubstring("INVALID_ARGUMENT"))
				Expect(rep.InviteErr).To(ContainSubstring("no common codec"))
				Expect(rep.GWCalls).To(BeZero())
			})
		})
	}
})

var _ = Describe("Registration", Label("interop"), func() {
	if !lab.Selected(pbx.BackendEmbedded) {
		return // the PBX link's outage needs the PBX on the emulated network: the embedded PBX
	}
	It("reports the PBX link's loss on /healthz (503) and recovers when it is back (200), over the emulated network", func() {
		type regReport struct {
			Before, During, After int
			Lost, Recovered       time.Duration
			Metrics               string
		}
		const outage = 30 * time.Second
		rep, err := inWorld(embeddedEmulated, func(w *world) (regReport, error) {
			var rep regReport
			ctx := w.ctx
			rep.Before, _, _ = w.health()
			pbxHost := w.hosts["pbx"].netem
			down := netem.LinkConfig{Outages: []netem.Outage{{Start: time.Since(w.nw.StartTime()), Duration: outage}}}
			if err := pbxHost.Up.Set(down); err != nil {
				return rep, err
			}
			if err := pbxHost.Down.Set(down); err != nil {
				return rep, err
			}
			start := time.Now()
			if err := waitFor(ctx, outage, func() bool { c, _, _ := w.health(); return c == http.StatusServiceUnavailable }); err != nil {
				return rep, fmt.Errorf("loss not noticed: %w", err)
			}
			rep.Lost = time.Since(start)
			rep.During, _, _ = w.health()
			if err := waitFor(ctx, outage+time.Minute, func() bool { return w.AllRegistered() }); err != nil {
				return rep, fmt.Errorf("not recovered: %w", err)
			}
			rep.Recovered = time.Since(start)
			rep.After, _, _ = w.health()
			_, body, err := w.get("/metrics")
			rep.Metrics = string(body)
			return rep, err
		})
		Expect(err).NotTo(HaveOccurred())
		AddReportEntry("registration", fmt.Sprintf("loss noticed after %v, all registered again %v after the outage began (outage %v)", rep.Lost, rep.Recovered, outage))
		Expect(rep.Before).To(Equal(http.StatusOK))
		Expect(rep.During).To(Equal(http.StatusServiceUnavailable))
		Expect(rep.After).To(Equal(http.StatusOK))
		Expect(rep.Lost).To(BeNumerically("<", 15*time.Second), "OPTIONS every 5 s notice a lost PBX")
		Expect(rep.Recovered).To(BeNumerically(">=", outage))
		Expect(rep.Metrics).To(ContainSubstring(`siprtc_sip_registrations{state="registered"} 6`))
	})

	It("reports the PBX's loss on /healthz (503) and recovers when it is back (200), over loopback: a stopped PBX restarted on the same port", func() {
		type regReport struct {
			Before, During, After int
			MetricsDuring, After6 string
			Lost, Recovered       time.Duration
			Call                  callReport
		}
		// The restarted PBX must outlive the world's gateway (which unregisters as it closes):
		// it is closed once the world is torn down.
		var restarted *pbx.Embedded
		defer func() {
			if restarted != nil {
				Expect(restarted.Close()).To(Succeed())
			}
		}()
		rep, err := inWorld(embeddedLoopback, func(w *world) (regReport, error) {
			var rep regReport
			ctx := w.ctx
			rep.Before, _, _ = w.health()
			old := w.Embedded()
			addr := old.SIPAddr()
			By("stopping the PBX")
			if err := old.Close(); err != nil {
				return rep, err
			}
			start := time.Now()
			if err := waitFor(ctx, 15*time.Second, func() bool { c, _, _ := w.health(); return c == http.StatusServiceUnavailable }); err != nil {
				return rep, fmt.Errorf("loss not noticed: %w", err)
			}
			rep.Lost = time.Since(start)
			rep.During, _, _ = w.health()
			_, body, err := w.get("/metrics")
			if err != nil {
				return rep, err
			}
			rep.MetricsDuring = string(body)

			By("starting a PBX on the same address with the same configuration")
			h := w.hosts["pbx"]
			restarted, err = pbx.StartEmbedded(ctx, pbx.EmbeddedConfig{ConfDir: confDir, Net: h.net, IP: h.ip,
				SIPPort: int(addr.Port()), Logger: w.log.With("who", "pbx (restarted)")})
			if err != nil {
				return rep, err
			}
			if err := waitFor(ctx, 30*time.Second, func() bool {
				c, _, _ := w.health()
				return c == http.StatusOK && w.AllRegistered()
			}); err != nil {
				return rep, fmt.Errorf("not recovered: %w", err)
			}
			rep.Recovered = time.Since(start)
			rep.After, _, _ = w.health()
			if _, body, err = w.get("/metrics"); err != nil {
				return rep, err
			}
			rep.After6 = string(body)

			By("calling through the restarted PBX")
			phone, err := w.phone("1001")
			if err != nil {
				return rep, err
			}
			phone.OnIncoming(ringThenAnswer(0, make(chan string, 1)))
			cl, err := w.client("alice")
			if err != nil {
				return rep, err
			}
			cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			c, pc, _, err := callPhone(cctx, cl, phone, "1001")
			if err != nil {
				return rep, err
			}
			if err := talkAndMeasure(cctx, &rep.Call, c, pc, time.Second); err != nil {
				return rep, err
			}
			if err := c.Hangup(cctx, "bye"); err != nil {
				return rep, err
			}
			err = waitFor(cctx, 10*time.Second, func() bool { return w.gw.ActiveCalls() == 0 && restarted.ActiveCalls() == 0 })
			return rep, err
		}, withSIP(func(c *sipua.Config) {
			// Real time: OPTIONS every second, each given 2 s, so the loss shows within seconds.
			c.KeepAlive, c.RequestTimeout = time.Second, 2*time.Second
		}))
		Expect(err).NotTo(HaveOccurred())
		AddReportEntry("registration (loopback)", fmt.Sprintf("loss noticed after %v, all registered again %v after the PBX stopped; call: %s", rep.Lost, rep.Recovered, rep.Call.summary()))
		Expect(rep.Before).To(Equal(http.StatusOK))
		Expect(rep.During).To(Equal(http.StatusServiceUnavailable))
		Expect(rep.MetricsDuring).To(ContainSubstring(`siprtc_sip_registrations{state="registered"} 0`))
		Expect(rep.After).To(Equal(http.StatusOK))
		Expect(rep.After6).To(ContainSubstring(`siprtc_sip_registrations{state="registered"} 6`))
		min := uint64(time.Second/(20*time.Millisecond)) * 8 / 10
		Expect(rep.Call.ClientRx).To(BeNumerically(">=", min), "audio reaches the client after the recovery")
		Expect(rep.Call.PhoneRx).To(BeNumerically(">=", min), "audio reaches the phone after the recovery")
		Expect(rep.Call.ClientFreq).To(BeNumerically("~", phoneTone, 15))
		Expect(rep.Call.PhoneFreq).To(BeNumerically("~", clientTone, 15))
	})
})
