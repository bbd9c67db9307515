package interop_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/siprtc/siprtc/gateway/call"
	"github.com/siprtc/siprtc/gateway/signaling"
	"github.com/siprtc/siprtc/lab"
	"github.com/siprtc/siprtc/lab/pbx"
	"github.com/siprtc/siprtc/lab/peers/sipphone"
	"github.com/siprtc/siprtc/lab/peers/webclient"
)

const (
	phoneTone  = 440.0  // Hz, what the SIP phone sends
	clientTone = 1000.0 // Hz, what the WebRTC client sends (webclient's default)
	talk       = 2 * time.Second
)

// callReport is what a call scenario measured.
type callReport struct {
	States        []string // the client's invitation states, in order
	SIPCodes      []int
	EndReason     string // the client's
	ClientRx      uint64 // audio packets the client received
	PhoneRx       uint64 // audio packets the phone received
	ClientFreq    float64
	ClientFreqErr error
	PhoneFreq     float64 // the dominant frequency of what the phone received and decoded
	PhoneFreqErr  error
	From          string // the user part of From at the phone (the account the call left from)
	XNumber       string
	PhoneEnded    bool
	Records       []call.Record
	Events        []webclient.Event
	DTMF          []webclient.DTMFEvent
	PhoneDTMF     []string
	Extra         map[string]any
}

func states(c *webclient.Call) ([]string, []int) {
	var s []string
	var codes []int
	for _, st := range c.States() {
		s = append(s, st.State)
		codes = append(codes, st.SIPCode)
	}
	return s, codes
}

// ringThenAnswer is a phone handler that rings, waits, and answers; it reports the INVITE's
// From user.
func ringThenAnswer(delay time.Duration, from chan<- string) func(*sipphone.Incoming) {
	return func(in *sipphone.Incoming) {
		select {
		case from <- in.Request().From().Address.User:
		default:
		}
		_ = in.Ring()
		select {
		case <-time.After(delay):
			_, _ = in.Answer()
		case <-in.Cancelled():
		}
	}
}

// talkAndMeasure lets the established call carry audio for d and records what each side got.
func talkAndMeasure(ctx context.Context, rep *callReport, c *webclient.Call, pc *sipphone.Call, d time.Duration) error {
	if err := c.WaitConnected(ctx); err != nil {
		return fmt.Errorf("client not connected: %w", err)
	}
	if err := c.WaitMedia(ctx, 25, 0); err != nil {
		return fmt.Errorf("no audio at the client: %w", err)
	}
	time.Sleep(d)
	rep.ClientRx = c.Stats().Audio.PacketsReceived
	rep.ClientFreq, rep.ClientFreqErr = c.ToneFrequency()
	rep.PhoneRx = pc.Media().Stats().PacketsReceived
	rep.PhoneFreq, rep.PhoneFreqErr = pc.Media().ToneFrequency()
	return nil
}

var _ = Describe("WebRTC client to SIP phone", Label("interop"), func() {
	for _, n := range networks {
		Context("over "+n.name, func() {
			It("connects a WebRTC client to a SIP number through a pool account: ring, answer, audio both ways, BYE from the client", func() {
				rep, err := inWorld(n, func(w *world) (callReport, error) {
					var rep callReport
					phone, err := w.phone("1001")
					if err != nil {
						return rep, err
					}
					from := make(chan string, 1)
					phone.OnIncoming(ringThenAnswer(300*time.Millisecond, from))
					cl, err := w.client("alice")
					if err != nil {
						return rep, err
					}
					ctx, cancel := context.WithTimeout(w.ctx, 20*time.Second)
					defer cancel()
					c, pc, _, err := callPhone(ctx, cl, phone, "1001")
					if err != nil {
						return rep, err
					}
					rep.From = <-from
					if err := talkAndMeasure(ctx, &rep, c, pc, talk); err != nil {
						return rep, err
					}
					if err := c.Hangup(ctx, "bye"); err != nil {
						return rep, err
					}
					select {
					case <-pc.Done():
						rep.PhoneEnded = true
					case <-ctx.Done():
					}
					if err := w.quiesce(); err != nil {
						return rep, err
					}
					rep.States, rep.SIPCodes = states(c)
					rep.Records = w.records()
					return rep, nil
				})
				Expect(err).NotTo(HaveOccurred())
				AddReportEntry("outbound call", rep.summary())
				Expect(rep.States).To(Equal([]string{"SENT_TO_REMOTE", "RECEIVED_BY_REMOTE", "ACCEPTED_BY_REMOTE"}))
				Expect(rep.SIPCodes[1]).To(Equal(180))
				Expect(rep.From).To(Equal("1005"), "the first pool account (least recently used) carries alice's call")
				min := uint64(talk/(20*time.Millisecond)) * 8 / 10
				Expect(rep.ClientRx).To(BeNumerically(">=", min))
				Expect(rep.PhoneRx).To(BeNumerically(">=", min))
				Expect(rep.ClientFreqErr).NotTo(HaveOccurred())
				Expect(rep.ClientFreq).To(BeNumerically("~", phoneTone, 15))
				Expect(rep.PhoneFreqErr).NotTo(HaveOccurred())
				Expect(rep.PhoneFreq).To(BeNumerically("~", clientTone, 15), "the client's tone reaches the phone")
				recordTones(n, "outbound call", rep)
				Expect(rep.PhoneEnded).To(BeTrue(), "the client's hangup reaches the phone as BYE")
				Expect(rep.Records).To(HaveLen(1))
				r := rep.Records[0]
				Expect(r.Direction).To(Equal(call.Outbound))
				Expect(r.Outcome).To(Equal(call.OutcomeAnswered))
				Expect(r.Account).To(Equal("1005"))
				Expect(r.Codec).To(Equal("PCMU/8000"))
				Expect(r.SIP.PacketsReceived).To(BeNumerically(">=", min))
				Expect(r.WebRTC.PacketsReceived).To(BeNumerically(">=", min))
			})

			It("bridges early media (183 with SDP) before the answer, and ends the call on the phone's BYE", func() {
				rep, err := inWorld(n, func(w *world) (callReport, error) {
					var rep callReport
					phone, err := w.phone("1001")
					if err != nil {
						return rep, err
					}
					phone.OnIncoming(func(in *sipphone.Incoming) {
						if err := in.Progress(); err != nil {
							return
						}
						select {
						case <-time.After(1500 * time.Millisecond):
							_, _ = in.Answer()
						case <-in.Cancelled():
						}
					})
					cl, err := w.client("alice")
					if err != nil {
						return rep, err
					}
					ctx, cancel := context.WithTimeout(w.ctx, 20*time.Second)
					defer cancel()
					c, pc, acc, err := callPhone(ctx, cl, phone, "1001")
					if err != nil {
						return rep, err
					}
					_, recv := c.Packets()
					early := 0
					for _, p := range recv {
						if p.Kind == "audio" && p.At.Before(acc.At) {
							early++
						}
					}
					rep.Extra = map[string]any{"early": early}
					if err := talkAndMeasure(ctx, &rep, c, pc, time.Second); err != nil {
						return rep, err
					}
					if err := pc.Hangup(ctx); err != nil {
						return rep, err
					}
					select {
					case <-c.Done():
					case <-ctx.Done():
						return rep, errTimeout
					}
					rep.EndReason = c.EndReason()
					if err := w.quiesce(); err != nil {
						return rep, err
					}
					rep.States, rep.SIPCodes = states(c)
					rep.Records = w.records()
					return rep, nil
				})
				Expect(err).NotTo(HaveOccurred())
				AddReportEntry("early media", rep.summary()+fmt.Sprintf(", %v packets before the answer", rep.Extra["early"]))
				Expect(rep.States).To(Equal([]string{"SENT_TO_REMOTE", "RECEIVED_BY_REMOTE", "ACCEPTED_BY_REMOTE"}))
				Expect(rep.SIPCodes[1]).To(Equal(183))
				Expect(rep.Extra["early"]).To(BeNumerically(">=", 40), "1.5 s of ringing tone must reach the client before the answer")
				Expect(rep.ClientFreq).To(BeNumerically("~", phoneTone, 15))
				Expect(rep.EndReason).To(Equal("hangup: BYE"))
				Expect(rep.Records).To(ContainElement(And(HaveField("EndReason", "BYE"), HaveField("Outcome", call.OutcomeAnswered))))
			})

			It("cancels the SIP call when the client cancels while it rings (CANCEL, 487)", func() {
				rep, err := inWorld(n, func(w *world) (callReport, error) {
					var rep callReport
					phone, err := w.phone("1001")
					if err != nil {
						return rep, err
					}
					cancelled := make(chan struct{})
					phone.OnIncoming(func(in *sipphone.Incoming) {
						_ = in.Ring()
						<-in.Cancelled()
						close(cancelled)
					})
					cl, err := w.client("alice")
					if err != nil {
						return rep, err
					}
					ctx, cancel := context.WithTimeout(w.ctx, 20*time.Second)
					defer cancel()
					c, err := cl.Call(ctx, "1001")
					if err != nil {
						return rep, err
					}
					if _, err := c.WaitState(ctx, string(signaling.LocalReceivedByRemote)); err != nil {
						return rep, err
					}
					if err := c.Cancel(ctx); err != nil {
						return rep, err
					}
					select {
					case <-cancelled:
						rep.PhoneEnded = true
					case <-ctx.Done():
					}
					if err := w.quiesce(); err != nil {
						return rep, err
					}
					// The gateway has ended the call; its CANCELED state may still be on its way to
					// the client (the assertion below reports it missing if it never comes).
					_, _ = c.WaitState(ctx, string(signaling.LocalCanceled))
					rep.States, rep.SIPCodes = states(c)
					rep.Records = w.records()
					return rep, nil
				})
				Expect(err).NotTo(HaveOccurred())
				Expect(rep.States).To(Equal([]string{"SENT_TO_REMOTE", "RECEIVED_BY_REMOTE", "CANCELED"}))
				Expect(rep.PhoneEnded).To(BeTrue(), "the PBX must CANCEL the phone")
				Expect(rep.Records).To(ConsistOf(And(HaveField("Outcome", call.OutcomeCanceled), HaveField("SIPCode", 487))))
			})

			It("routes a call flagged as PSTN to [pstn] prefix + number at the PSTN server", func() {
				type pstnReport struct{ RURI, State string }
				rep, err := inWorld(n, func(w *world) (pstnReport, error) {
					var rep pstnReport
					phone, err := w.phone("1001")
					if err != nil {
						return rep, err
					}
					ruri := make(chan string, 1)
					phone.OnIncoming(func(in *sipphone.Incoming) {
						ruri <- in.Request().Recipient.User
						_, _ = in.Answer()
					})
					cl, err := w.client("alice")
					if err != nil {
						return rep, err
					}
					ctx, cancel := context.WithTimeout(w.ctx, 20*time.Second)
					defer cancel()
					// prefix 1 + "001" is extension 1001 of the PBX, standing in for a PSTN trunk.
					c, err := cl.Call(ctx, "001", webclient.WithContent(`{"pstn":true}`))
					if err != nil {
						return rep, err
					}
					st, err := c.WaitState(ctx, string(signaling.LocalAcceptedByRemote))
					if err != nil {
						return rep, err
					}
					rep.State = st.State
					rep.RURI = <-ruri
					if err := c.Hangup(ctx, ""); err != nil {
						return rep, err
					}
					return rep, w.quiesce()
				}, withConf("[pstn]\nprefix=1\n"))
				Expect(err).NotTo(HaveOccurred())
				Expect(rep.State).To(Equal("ACCEPTED_BY_REMOTE"))
				Expect(rep.RURI).To(Equal("1001"))
			})

			DescribeTable("maps the SIP failure to the invitation outcome",
				func(callee string, reject int, state, code string, sipCode int) {
					rep, err := inWorld(n, func(w *world) (callReport, error) {
						var rep callReport
						phone, err := w.phone("1001")
						if err != nil {
							return rep, err
						}
						phone.OnIncoming(func(in *sipphone.Incoming) { _ = in.Reject(reject, reasons[reject]) })
						cl, err := w.client("alice")
						if err != nil {
							return rep, err
						}
						ctx, cancel := context.WithTimeout(w.ctx, 20*time.Second)
						defer cancel()
						c, err := cl.Call(ctx, callee)
						if err != nil {
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
						rep.States, rep.SIPCodes = states(c)
						for _, st := range c.States() {
							rep.EndReason = st.Code
						}
						rep.Records = w.records()
						return rep, nil
					})
					Expect(err).NotTo(HaveOccurred())
					if n.backend == pbx.BackendAsterisk && sipCode == 603 {
						// Asterisk has no hangup cause that goes out as 603: the callee's
						// CALL_REJECTED (21) leaves it as 403, still a refusal.
						sipCode = 403
					}
					Expect(rep.States[len(rep.States)-1]).To(Equal(state))
					Expect(rep.SIPCodes[len(rep.SIPCodes)-1]).To(Equal(sipCode))
					Expect(rep.EndReason).To(Equal(code))
					Expect(rep.Records).To(HaveLen(1))
				},
				Entry("the phone's 486 Busy Here: REFUSED_BY_REMOTE 486", "1001", 486, "REFUSED_BY_REMOTE", "", 486),
				Entry("an unregistered phone (the PBX's 480): FAILURE PEER_OFFLINE", "1002", 0, "FAILURE", "PEER_OFFLINE", 480),
				Entry("a number no extension matches (404): FAILURE PEER_OFFLINE", "7777", 0, "FAILURE", "PEER_OFFLINE", 404),
				Entry("the phone's 603 Decline: REFUSED_BY_REMOTE 603", "1001", 603, "REFUSED_BY_REMOTE", "", 603),
				// The PBX turns a 600 into the hangup cause USER_BUSY, which goes back out as 486
				// (FreeSWITCH's mod_sofia, and the embedded PBX after it): the gateway sees 486.
				Entry("the phone's 600 Busy Everywhere (486 from the PBX): REFUSED_BY_REMOTE 486", "1001", 600, "REFUSED_BY_REMOTE", "", 486),
				Entry("the phone's 408 Request Timeout: FAILURE PEER_NO_RESPONSE", "1001", 408, "FAILURE", "PEER_NO_RESPONSE", 408),
			)
		})
	}
})

// recordTones records the tone frequencies each end measured (lab.Record).
func recordTones(n network, name string, rep callReport) {
	lab.Record(lab.Measurement{
		Suite: "interop", Case: name + " over " + n.name, Backend: string(n.backend),
		Values: map[string]float64{"phone_to_client_hz": rep.ClientFreq, "client_to_phone_hz": rep.PhoneFreq},
	})
}

// summary is the report's figures without the raw records.
func (r callReport) summary() string {
	return fmt.Sprintf("states %v codes %v, client received %d packets (tone %.1f Hz, err %v), phone received %d (tone %.1f Hz, err %v), from %q, %d CDR(s)",
		r.States, r.SIPCodes, r.ClientRx, r.ClientFreq, r.ClientFreqErr, r.PhoneRx, r.PhoneFreq, r.PhoneFreqErr, r.From, len(r.Records))
}

var errTimeout = errors.New("timeout")

// reasons are the reason phrases the phone rejects calls with.
var reasons = map[int]string{
	408: "Request Timeout", 480: "Temporarily Unavailable", 486: "Busy Here", 600: "Busy Everywhere", 603: "Decline",
}
