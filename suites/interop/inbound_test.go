package interop_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/emiago/sipgo/sip"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/siprtc/siprtc/gateway/call"
	"github.com/siprtc/siprtc/gateway/signaling"
	"github.com/siprtc/siprtc/gateway/sipua"
	"github.com/siprtc/siprtc/lab/peers/sipphone"
	"github.com/siprtc/siprtc/lab/peers/webclient"
)

// dialResult is a phone's outgoing call once its INVITE has a final response.
type dialResult struct {
	call *sipphone.Call
	err  error
	at   time.Time
}

// dial places a call from the phone in the background; provisional codes go to codes.
func dial(ctx context.Context, ph *sipphone.Phone, target string, codes chan<- int) <-chan dialResult {
	out := make(chan dialResult, 1)
	go func() {
		c, err := ph.Call(ctx, target, sipphone.WithProvisionalHandler(func(r *sip.Response) {
			select {
			case codes <- r.StatusCode:
			default:
			}
		}))
		out <- dialResult{call: c, err: err, at: time.Now()}
	}()
	return out
}

func remoteStates(c *webclient.Call) []string {
	var out []string
	for _, s := range c.States() {
		out = append(out, s.State)
	}
	return out
}

var _ = Describe("SIP phone to WebRTC client (0 + user through the proxy account)", Label("interop"), func() {
	for _, n := range networks {
		Context("over "+n.name, func() {
			DescribeTable("rings the user named by X-Number, answers only when the user accepts, carries audio both ways",
				func(hangupByPhone bool) {
					const acceptAfter = 500 * time.Millisecond
					rep, err := inWorld(n, func(w *world) (callReport, error) {
						var rep callReport
						phone, err := w.phone("1001")
						if err != nil {
							return rep, err
						}
						cl, err := w.client("bob", webclient.WithAutoAccept(acceptAfter))
						if err != nil {
							return rep, err
						}
						ctx, cancel := context.WithTimeout(w.ctx, 20*time.Second)
						defer cancel()
						codes := make(chan int, 8)
						start := time.Now()
						res := <-dial(ctx, phone, "0bob", codes)
						if res.err != nil {
							return rep, res.err
						}
						rep.Extra = map[string]any{"answerAfter": res.at.Sub(start)}
						close(codes)
						for c := range codes {
							rep.SIPCodes = append(rep.SIPCodes, c)
						}
						if err := waitFor(ctx, 5*time.Second, func() bool { return len(cl.Calls()) == 1 }); err != nil {
							return rep, err
						}
						c := cl.Calls()[0]
						rep.From = c.Peer()
						if _, err := c.WaitState(ctx, string(signaling.RemoteAccepted)); err != nil {
							return rep, err
						}
						if err := talkAndMeasure(ctx, &rep, c, res.call, talk); err != nil {
							return rep, err
						}
						if hangupByPhone {
							if err := res.call.Hangup(ctx); err != nil {
								return rep, err
							}
							select {
							case <-c.Done():
							case <-ctx.Done():
								return rep, errTimeout
							}
							rep.EndReason = c.EndReason()
						} else {
							if err := c.Hangup(ctx, "bye"); err != nil {
								return rep, err
							}
							select {
							case <-res.call.Done():
								rep.PhoneEnded = true
							case <-ctx.Done():
								return rep, errTimeout
							}
						}
						if err := w.quiesce(); err != nil {
							return rep, err
						}
						rep.States = remoteStates(c)
						rep.Records = w.records()
						return rep, nil
					})
					Expect(err).NotTo(HaveOccurred())
					AddReportEntry("inbound call", rep.summary())
					Expect(rep.SIPCodes).To(ContainElement(180), "the phone hears ringing once the client has the invitation")
					Expect(rep.Extra["answerAfter"]).To(BeNumerically(">=", acceptAfter), "the 200 waits for the user's accept")
					Expect(rep.From).To(Equal("1001"), "the invitation names the SIP caller")
					Expect(rep.States).To(Equal([]string{"INVITATION_RECEIVED", "ACCEPT_SENT_TO_LOCAL", "ACCEPTED"}))
					min := uint64(talk/(20*time.Millisecond)) * 8 / 10
					Expect(rep.ClientRx).To(BeNumerically(">=", min))
					Expect(rep.PhoneRx).To(BeNumerically(">=", min))
					Expect(rep.ClientFreq).To(BeNumerically("~", phoneTone, 15))
					Expect(rep.PhoneFreqErr).NotTo(HaveOccurred())
					Expect(rep.PhoneFreq).To(BeNumerically("~", clientTone, 15), "the client's tone reaches the phone")
					recordTones(n, "inbound call", rep)
					if hangupByPhone {
						Expect(rep.EndReason).To(Equal("hangup: BYE"))
					} else {
						Expect(rep.PhoneEnded).To(BeTrue())
					}
					Expect(rep.Records).To(HaveLen(1))
					r := rep.Records[0]
					Expect(r.Direction).To(Equal(call.Inbound))
					Expect(r.Account).To(Equal("1000"))
					Expect(r.From).To(Equal("1001"))
					Expect(r.To).To(Equal("bob"))
					Expect(r.Outcome).To(Equal(call.OutcomeAnswered))
				},
				Entry("BYE from the client", false),
				Entry("BYE from the phone", true),
			)

			It("routes a call to a pool account to the WebRTC user holding it: invitation, accept, audio both ways", func() {
				rep, err := inWorld(n, func(w *world) (callReport, error) {
					var rep callReport
					phone, err := w.phone("1001")
					if err != nil {
						return rep, err
					}
					phone.OnIncoming(ringThenAnswer(0, make(chan string, 1)))
					cl, err := w.client("alice", webclient.WithoutAutoAccept())
					if err != nil {
						return rep, err
					}
					ctx, cancel := context.WithTimeout(w.ctx, 30*time.Second)
					defer cancel()
					By("alice calls out: she holds a pool account until she logs out")
					out, err := cl.Call(ctx, "1001")
					if err != nil {
						return rep, err
					}
					if _, err := out.WaitState(ctx, string(signaling.LocalAcceptedByRemote)); err != nil {
						return rep, err
					}
					if err := out.Hangup(ctx, "bye"); err != nil {
						return rep, err
					}
					if err := w.quiesce(); err != nil {
						return rep, err
					}
					held := w.records()
					if len(held) != 1 {
						return rep, fmt.Errorf("%d CDRs after alice's call, want 1", len(held))
					}
					rep.Extra = map[string]any{"held": held[0].Account}

					By("the phone dials the account alice holds")
					res := dial(ctx, phone, held[0].Account, make(chan int, 8))
					var inv *webclient.Invitation
					select {
					case inv = <-cl.Invitations():
					case r := <-res:
						return rep, fmt.Errorf("the call ended before alice was invited: %v", r.err)
					case <-ctx.Done():
						return rep, errTimeout
					}
					c, err := inv.Accept(ctx, "")
					if err != nil {
						return rep, err
					}
					r := <-res
					if r.err != nil {
						return rep, r.err
					}
					rep.From = c.Peer()
					if err := talkAndMeasure(ctx, &rep, c, r.call, talk); err != nil {
						return rep, err
					}
					if err := r.call.Hangup(ctx); err != nil {
						return rep, err
					}
					select {
					case <-c.Done():
					case <-ctx.Done():
						return rep, errTimeout
					}
					if err := w.quiesce(); err != nil {
						return rep, err
					}
					rep.States = remoteStates(c)
					rep.Records = w.records()
					return rep, nil
				})
				Expect(err).NotTo(HaveOccurred())
				AddReportEntry("call to a pool account", rep.summary())
				Expect(rep.Extra["held"]).To(Equal("1005"), "alice's call left from the first pool account")
				Expect(rep.From).To(Equal("1001"), "the invitation names the SIP caller")
				Expect(rep.States).To(Equal([]string{"INVITATION_RECEIVED", "ACCEPT_SENT_TO_LOCAL", "ACCEPTED"}))
				min := uint64(talk/(20*time.Millisecond)) * 8 / 10
				Expect(rep.ClientRx).To(BeNumerically(">=", min))
				Expect(rep.PhoneRx).To(BeNumerically(">=", min))
				Expect(rep.ClientFreq).To(BeNumerically("~", phoneTone, 15))
				Expect(rep.PhoneFreq).To(BeNumerically("~", clientTone, 15))
				Expect(rep.Records).To(HaveLen(2))
				r := rep.Records[1]
				Expect(r.Direction).To(Equal(call.Inbound))
				Expect(r.Account).To(Equal("1005"))
				Expect(r.From).To(Equal("1001"))
				Expect(r.To).To(Equal("alice"))
				Expect(r.Outcome).To(Equal(call.OutcomeAnswered))
			})

			It("tells the client the caller gave up (CANCELED) and answers the CANCEL", func() {
				rep, err := inWorld(n, func(w *world) (callReport, error) {
					var rep callReport
					phone, err := w.phone("1001")
					if err != nil {
						return rep, err
					}
					cl, err := w.client("bob", webclient.WithoutAutoAccept())
					if err != nil {
						return rep, err
					}
					ctx, cancel := context.WithTimeout(w.ctx, 20*time.Second)
					defer cancel()
					dctx, hang := context.WithCancel(ctx)
					defer hang()
					codes := make(chan int, 8)
					done := dial(dctx, phone, "0bob", codes)
					var inv *webclient.Invitation
					select {
					case inv = <-cl.Invitations():
					case <-ctx.Done():
						return rep, errTimeout
					}
					select {
					case <-codes: // ringing
					case <-ctx.Done():
						return rep, errTimeout
					}
					hang()
					res := <-done
					rep.SIPCodes = []int{sipua.StatusCode(res.err)}
					if _, err := inv.Call().WaitState(ctx, string(signaling.RemoteCanceled)); err != nil && !errors.Is(err, webclient.ErrCallEnded) {
						return rep, err
					}
					rep.States = remoteStates(inv.Call())
					if err := w.quiesce(); err != nil {
						return rep, err
					}
					rep.Records = w.records()
					return rep, nil
				})
				Expect(err).NotTo(HaveOccurred())
				Expect(rep.SIPCodes).To(Equal([]int{487}))
				Expect(rep.States).To(Equal([]string{"INVITATION_RECEIVED", "CANCELED"}))
				Expect(rep.Records).To(ConsistOf(HaveField("Outcome", call.OutcomeCanceled)))
			})

			It("passes the client's refusal to the caller (486 Busy Here)", func() {
				rep, err := inWorld(n, func(w *world) (callReport, error) {
					var rep callReport
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
					cl.OnInvitation(func(inv *webclient.Invitation) { _ = inv.Refuse(ctx, "busy", 486) })
					res := <-dial(ctx, phone, "0bob", make(chan int, 8))
					rep.SIPCodes = []int{sipua.StatusCode(res.err)}
					if err := w.quiesce(); err != nil {
						return rep, err
					}
					rep.Records = w.records()
					return rep, nil
				})
				Expect(err).NotTo(HaveOccurred())
				Expect(rep.SIPCodes).To(Equal([]int{486}))
				Expect(rep.Records).To(ConsistOf(And(HaveField("Outcome", call.OutcomeRefused), HaveField("SIPCode", 486))))
			})

			It("answers 480 when the user does not log in within the offline timer", func() {
				// Real RTM timers in virtual time; a shortened one in real time.
				var opts []worldOption
				offline := signaling.DefaultTimeouts.PeerOffline
				if !n.emulated {
					offline = 1500 * time.Millisecond
					opts = append(opts, withTimeouts(signaling.Timeouts{PeerOffline: offline}))
				}
				rep, err := inWorld(n, func(w *world) (callReport, error) {
					var rep callReport
					phone, err := w.phone("1001")
					if err != nil {
						return rep, err
					}
					ctx, cancel := context.WithTimeout(w.ctx, 2*offline+10*time.Second)
					defer cancel()
					start := time.Now()
					res := <-dial(ctx, phone, "0carol", make(chan int, 8))
					rep.SIPCodes = []int{sipua.StatusCode(res.err)}
					rep.Extra = map[string]any{"after": res.at.Sub(start)}
					if err := w.quiesce(); err != nil {
						return rep, err
					}
					rep.Records = w.records()
					return rep, nil
				}, opts...)
				Expect(err).NotTo(HaveOccurred())
				AddReportEntry("offline", fmt.Sprintf("480 after %v", rep.Extra["after"]))
				Expect(rep.SIPCodes).To(Equal([]int{480}))
				Expect(rep.Extra["after"]).To(BeNumerically(">=", offline))
				Expect(rep.Records).To(ConsistOf(And(HaveField("Outcome", call.OutcomeOffline), HaveField("To", "carol"))))
			})
		})
	}
})
