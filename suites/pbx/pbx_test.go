package pbx_test

import (
	"context"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/siprtc/siprtc/lab/pbx"
	"github.com/siprtc/siprtc/lab/pbx/rtprelay"
	"github.com/siprtc/siprtc/lab/peers/sipphone"
)

// sdpMedia is the RTP address (connection address and port) of each accepted m-line of body.
func sdpMedia(body []byte) []netip.AddrPort {
	_, media, err := rtprelay.ParseSDP(body)
	Expect(err).NotTo(HaveOccurred(), "SDP:\n%s", body)
	var out []netip.AddrPort
	for _, m := range media {
		if m.Port != 0 {
			out = append(out, netip.AddrPortFrom(m.Addr, uint16(m.Port)))
		}
	}
	return out
}

// audioFor is how long a connected call carries audio before the spec checks it.
const audioFor = time.Second

var _ = Describe("The embedded PBX running the FreeSWITCH overlay", Label("pbx"), func() {
	for _, kind := range []struct {
		name string
		mk   func() network
	}{{"loopback", loopback}, {"the emulated network", emulated}} {
		Context("over "+kind.name, func() {
			var (
				ctx        context.Context
				p          *pbx.Embedded
				hA, hB, hC host
				hOut       host
				nw         network
				hPBX2      host
			)
			BeforeEach(func() {
				var cancel context.CancelFunc
				ctx, cancel = context.WithCancel(context.Background())
				DeferCleanup(cancel)
				nw = kind.mk()
				hp := nw.host("pbx", false)
				hPBX2 = nw.host("pbx2", false)
				hA, hB = nw.host("phone-a", false), nw.host("phone-b", false)
				hC = nw.host("phone-c", false)
				hOut = nw.host("outsider", true)
				nw.start()
				p = startPBX(ctx, hp, nil)
			})

			Describe("registration", func() {
				It("registers a directory user after a digest challenge", func() {
					ph := startPhone(ctx, p, hA, "1001", "")
					res, err := ph.Register(ctx, time.Minute)
					Expect(err).NotTo(HaveOccurred())
					Expect(res.StatusCode).To(Equal(200))
					Expect(p.Stats().Challenges).To(BeNumerically(">=", 1), "REGISTER must be challenged first")
					Expect(p.Registrations()).To(ContainElement(HaveField("User", "1001")))
				})

				It("refuses a wrong password with 403", func() {
					ph := startPhone(ctx, p, hA, "1001", "not-the-password")
					_, err := ph.Register(ctx, time.Minute)
					Expect(statusCode(err)).To(Equal(403), "%v", err)
					Expect(p.Registrations()).To(BeEmpty())
				})

				It("answers 404 for a user not in the directory", func() {
					ph := startPhone(ctx, p, hA, "9999", "whatever")
					_, err := ph.Register(ctx, time.Minute)
					Expect(statusCode(err)).To(Equal(404), "%v", err)
				})

				It("refreshes a binding and removes it on unregister", func() {
					ph := startPhone(ctx, p, hA, "1001", "", sipphone.RegisterRefresh(false))
					_, err := ph.Register(ctx, time.Minute)
					Expect(err).NotTo(HaveOccurred())
					first := p.Registrations()[0].Expires
					_, err = ph.Register(ctx, 2*time.Minute)
					Expect(err).NotTo(HaveOccurred())
					Expect(p.Registrations()).To(HaveLen(1), "a refresh replaces the binding")
					Expect(p.Registrations()[0].Expires).To(BeTemporally(">", first))
					Expect(ph.Unregister(ctx)).To(Succeed())
					Expect(p.Registrations()).To(BeEmpty())
				})
			})

			Describe("calls", func() {
				var caller, callee *sipphone.Phone
				BeforeEach(func() {
					callee = startPhone(ctx, p, hB, "1000", "")
					caller = startPhone(ctx, p, hA, "1001", "")
					for _, ph := range []*sipphone.Phone{callee, caller} {
						_, err := ph.Register(ctx, time.Minute)
						Expect(err).NotTo(HaveOccurred())
					}
				})

				// The issue asks for 1000 calling 1001; 1001 calling 1000 is the gateway's usual
				// direction (1000 is its proxy account). Both run.
				for _, dir := range []struct{ from, to string }{{"1000", "1001"}, {"1001", "1000"}} {
					It("connects "+dir.from+" calling "+dir.to+" with audio both ways, media anchored in the PBX", func() {
						phones := map[string]*sipphone.Phone{"1000": callee, "1001": caller}
						from, to := phones[dir.from], phones[dir.to]
						call, err := from.Call(ctx, dir.to)
						Expect(err).NotTo(HaveOccurred())
						Eventually(to.Calls).Should(HaveLen(1))
						answered := to.Calls()[0]

						By("checking both legs' SDP point at the PBX")
						pbxIP := p.SIPAddr().Addr()
						Expect(call.Media().Stats().RemoteAddr.Addr()).To(Equal(pbxIP))
						Expect(answered.Media().Stats().RemoteAddr.Addr()).To(Equal(pbxIP))
						offered := sdpMedia(answered.Invite().Body())
						Expect(offered).NotTo(BeEmpty())
						Expect(offered).NotTo(ContainElement(call.Media().LocalAddr()), "the callee must not see the caller's media address")
						Expect(offered).To(HaveEach(HaveField("Addr()", pbxIP)), "the callee's offer must point at the PBX")
						answer := sdpMedia(call.RemoteSDP())
						Expect(answer).NotTo(ContainElement(answered.Media().LocalAddr()), "the caller must not see the callee's media address")
						Expect(answer).To(HaveEach(HaveField("Addr()", pbxIP)), "the caller's answer must point at the PBX")

						By("carrying audio both ways for " + audioFor.String())
						time.Sleep(audioFor)
						min := uint64(audioFor/(20*time.Millisecond)) * 8 / 10
						Eventually(func() uint64 { return call.Media().Stats().PacketsReceived }).Should(BeNumerically(">=", min))
						Eventually(func() uint64 { return answered.Media().Stats().PacketsReceived }).Should(BeNumerically(">=", min))
						Expect(call.Media().Stats().Lost).To(BeZero())
						Expect(answered.Media().Stats().Lost).To(BeZero())
						GinkgoWriter.Printf("%s received %d, %s received %d RTP packets\n",
							dir.from, call.Media().Stats().PacketsReceived, dir.to, answered.Media().Stats().PacketsReceived)

						By("hanging up: the BYE reaches the callee through the PBX")
						Expect(call.Hangup(ctx)).To(Succeed())
						Eventually(answered.Done()).Should(BeClosed())
						Eventually(p.ActiveCalls).Should(BeZero())
					})
				}

				It("ends the call on both sides when the callee hangs up", func() {
					call, err := caller.Call(ctx, "1000")
					Expect(err).NotTo(HaveOccurred())
					Eventually(callee.Calls).Should(HaveLen(1))
					Expect(callee.Calls()[0].Hangup(ctx)).To(Succeed())
					Eventually(call.Done()).Should(BeClosed())
					Eventually(p.ActiveCalls).Should(BeZero())
				})

				It("routes 0 + a number to user 1000 with the X-Number header", func() {
					got := make(chan *sip.Request, 1)
					callee.OnIncoming(func(in *sipphone.Incoming) {
						got <- in.Request()
						_, _ = in.Answer()
					})
					call, err := caller.Call(ctx, "05551234")
					Expect(err).NotTo(HaveOccurred())
					var inv *sip.Request
					Eventually(got).Should(Receive(&inv))
					h := inv.GetHeader("X-Number")
					Expect(h).NotTo(BeNil(), "INVITE to 1000:\n%s", inv)
					Expect(h.Value()).To(Equal("<sip:5551234@" + p.Domain() + ">"))
					Expect(inv.From().Address.User).To(Equal("1001"), "the caller's number must show")
					Expect(call.Hangup(ctx)).To(Succeed())
				})

				It("cancels the callee when the caller cancels before answer (487)", func() {
					cancelled := make(chan struct{})
					callee.OnIncoming(func(in *sipphone.Incoming) {
						_ = in.Ring()
						<-in.Cancelled()
						close(cancelled)
					})
					cctx, cancel := context.WithCancel(ctx)
					defer cancel()
					var once sync.Once
					_, err := caller.Call(cctx, "1000", sipphone.WithProvisionalHandler(func(r *sip.Response) {
						if r.StatusCode == 180 {
							once.Do(cancel)
						}
					}))
					Expect(statusCode(err)).To(Equal(487), "%v", err)
					Eventually(cancelled).Should(BeClosed(), "the PBX must CANCEL the B leg")
					Eventually(p.ActiveCalls).Should(BeZero())
				})

				It("passes the callee's 486 Busy Here to the caller", func() {
					callee.OnIncoming(func(in *sipphone.Incoming) { _ = in.Reject(486, "Busy Here") })
					_, err := caller.Call(ctx, "1000")
					Expect(statusCode(err)).To(Equal(486), "%v", err)
				})

				It("answers 480 for a directory user that is not registered", func() {
					_, err := caller.Call(ctx, "1002")
					Expect(statusCode(err)).To(Equal(480), "%v", err)
				})

				It("answers 404 for a number no extension matches", func() {
					_, err := caller.Call(ctx, "7777")
					Expect(statusCode(err)).To(Equal(404), "%v", err)
				})

				It("rings reliably with 100rel on both legs, PRACKed each way", func() {
					var in *sipphone.Incoming
					rang := make(chan struct{})
					callee.OnIncoming(func(i *sipphone.Incoming) {
						in = i
						Expect(i.Reliable()).To(BeTrue(), "the PBX must offer 100rel on the B leg")
						_ = i.Ring()
						close(rang)
						time.Sleep(100 * time.Millisecond)
						_, _ = i.Answer()
					})
					var ringing *sip.Response
					var mu sync.Mutex
					call, err := caller.Call(ctx, "1000", sipphone.WithProvisionalHandler(func(r *sip.Response) {
						mu.Lock()
						defer mu.Unlock()
						if r.StatusCode == 180 && ringing == nil {
							ringing = r
						}
					}))
					Expect(err).NotTo(HaveOccurred())
					<-rang
					mu.Lock()
					defer mu.Unlock()
					Expect(ringing).NotTo(BeNil())
					Expect(ringing.GetHeader("Require")).NotTo(BeNil())
					Expect(strings.ToLower(ringing.GetHeader("Require").Value())).To(ContainSubstring("100rel"))
					Expect(ringing.GetHeader("RSeq")).NotTo(BeNil())
					Expect(call.PRACKs()).NotTo(BeEmpty(), "the caller's PRACK must get 200")
					Expect(in.PRACKs()).NotTo(BeEmpty(), "the PBX must PRACK the callee's reliable 180")
					Expect(call.Hangup(ctx)).To(Succeed())
				})

				It("echoes audio on 9196", func() {
					call, err := caller.Call(ctx, "9196")
					Expect(err).NotTo(HaveOccurred())
					time.Sleep(audioFor / 2)
					Eventually(func() uint64 { return call.Media().Stats().PacketsReceived }).Should(BeNumerically(">=", 10))
					st := call.Media().Stats()
					Expect(st.RemoteAddr.Addr()).To(Equal(p.SIPAddr().Addr()))
					Expect(call.Hangup(ctx)).To(Succeed())
				})
			})

			Describe("forking to every registration of a user", func() {
				It("rings both phones of 1000, bridges the one that answers and cancels the other (487)", func() {
					first := startPhone(ctx, p, hB, "1000", "")
					second := startPhone(ctx, p, hC, "1000", "")
					caller := startPhone(ctx, p, hA, "1001", "")
					for _, ph := range []*sipphone.Phone{first, second, caller} {
						_, err := ph.Register(ctx, time.Minute)
						Expect(err).NotTo(HaveOccurred())
					}
					Expect(p.Registrations()).To(HaveEach(HaveField("User", BeElementOf("1000", "1001"))))
					Expect(p.Registrations()).To(HaveLen(3), "1000 must have two contacts")

					secondRang, cancelled := make(chan struct{}), make(chan struct{})
					first.OnIncoming(func(in *sipphone.Incoming) {
						_ = in.Ring()
						select { // answer once both phones ring
						case <-secondRang:
							_, _ = in.Answer()
						case <-in.Cancelled():
						case <-ctx.Done():
						}
					})
					second.OnIncoming(func(in *sipphone.Incoming) {
						_ = in.Ring()
						close(secondRang)
						select {
						case <-in.Cancelled(): // the phone has answered the CANCEL and sent 487
							close(cancelled)
						case <-ctx.Done():
						}
					})
					call, err := caller.Call(ctx, "1000")
					Expect(err).NotTo(HaveOccurred())
					Eventually(cancelled).Should(BeClosed(), "the PBX must CANCEL the phone that did not answer")
					Expect(second.Calls()).To(BeEmpty())
					Expect(first.Calls()).To(HaveLen(1))
					answered := first.Calls()[0]

					By("carrying audio between the caller and the phone that answered, through the PBX")
					pbxIP := p.SIPAddr().Addr()
					Expect(call.Media().Stats().RemoteAddr.Addr()).To(Equal(pbxIP))
					Expect(answered.Media().Stats().RemoteAddr.Addr()).To(Equal(pbxIP))
					time.Sleep(audioFor)
					min := uint64(audioFor/(20*time.Millisecond)) * 8 / 10
					Eventually(func() uint64 { return call.Media().Stats().PacketsReceived }).Should(BeNumerically(">=", min))
					Eventually(func() uint64 { return answered.Media().Stats().PacketsReceived }).Should(BeNumerically(">=", min))
					Expect(call.Media().Stats().Lost).To(BeZero())
					Expect(answered.Media().Stats().Lost).To(BeZero())

					Expect(call.Hangup(ctx)).To(Succeed())
					Eventually(answered.Done()).Should(BeClosed())
					Eventually(p.ActiveCalls).Should(BeZero())
				})
			})

			if kind.name != "loopback" { // loopback has no address outside the ACL
				Describe("the domains ACL", func() {
					It("challenges an INVITE from outside the list and routes it after digest", func() {
						callee := startPhone(ctx, p, hB, "1000", "")
						_, err := callee.Register(ctx, time.Minute)
						Expect(err).NotTo(HaveOccurred())
						before := p.Stats().Challenges
						outsider := startPhone(ctx, p, hOut, "1001", "")
						call, err := outsider.Call(ctx, "1000")
						Expect(err).NotTo(HaveOccurred())
						Expect(p.Stats().Challenges).To(BeNumerically(">", before), "the INVITE must get a 407")
						Expect(call.Hangup(ctx)).To(Succeed())
					})

					It("refuses the INVITE with 403 when it fails digest", func() {
						outsider := startPhone(ctx, p, hOut, "1001", "wrong-password")
						_, err := outsider.Call(ctx, "1000")
						Expect(statusCode(err)).To(Equal(403), "%v", err)
					})

					It("refuses an INVITE from outside the list with 403 when auth-calls is off", func() {
						p2 := startPBX(ctx, hPBX2, map[string]string{"internal_auth_calls": "false"})
						outsider := startPhone(ctx, p2, hOut, "1001", "")
						_, err := outsider.Call(ctx, "1000")
						Expect(statusCode(err)).To(Equal(403), "%v", err)
						Expect(p2.Stats().Challenges).To(BeZero())
					})

					It("lets a caller inside the list in without a challenge", func() {
						callee := startPhone(ctx, p, hB, "1000", "")
						_, err := callee.Register(ctx, time.Minute)
						Expect(err).NotTo(HaveOccurred())
						before := p.Stats().Challenges
						inside := startPhone(ctx, p, hA, "1001", "")
						call, err := inside.Call(ctx, "1000")
						Expect(err).NotTo(HaveOccurred())
						Expect(p.Stats().Challenges).To(Equal(before))
						Expect(call.Hangup(ctx)).To(Succeed())
					})
				})
			}
		})
	}
})
