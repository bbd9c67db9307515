package interop_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/pion/rtp"

	"github.com/siprtc/siprtc/gateway/signaling"
	"github.com/siprtc/siprtc/gateway/sipua"
	"github.com/siprtc/siprtc/lab/pbx"
	"github.com/siprtc/siprtc/lab/peers/webclient"
)

// infoPhone is a bare SIP user agent (gateway/sipua, which the lab's phone is built on) that
// answers calls with a G.711 SDP, with or without telephone-event, and records the DTMF it
// gets by SIP INFO and the RFC 4733 events reaching its RTP socket: the lab's phone does not
// expose either.
type infoPhone struct {
	ua       *sipua.UA
	rtp      net.PacketConn
	answered chan *sipua.Dialog
	wg       sync.WaitGroup

	mu        sync.Mutex
	info      []string
	events    []string // RFC 4733 digits, one per event (at its end packet)
	lastEvent uint32   // the timestamp of the last event recorded
}

const dtmfDigits = "0123456789*#ABCD"

func (w *world) infoPhone(user string, telephoneEvent bool) (*infoPhone, error) {
	h := w.hosts["phone"]
	pw, _ := w.pbx.Password(user)
	ua, err := sipua.New(sipua.Config{
		Net: h.net, LocalIP: h.ip, Server: w.pbx.SIPAddr(), Domain: w.pbx.Domain(),
		Accounts: []sipua.Account{{User: user, Password: pw}}, Support100rel: true,
		Logger: w.log.With("who", "info phone"),
	})
	if err != nil {
		return nil, err
	}
	if err := ua.Start(w.ctx); err != nil {
		return nil, err
	}
	p := &infoPhone{ua: ua, answered: make(chan *sipua.Dialog, 1)}
	w.OnClose(func() error {
		err := ua.Close()
		if p.rtp != nil {
			_ = p.rtp.Close()
		}
		p.wg.Wait()
		return err
	})
	p.rtp, err = h.net.ListenPacket("udp4", netip.AddrPortFrom(h.ip, 0).String())
	if err != nil {
		return nil, err
	}
	p.wg.Go(p.readRTP)
	port := p.rtp.LocalAddr().(*net.UDPAddr).Port
	sdp := fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\nm=audio %d RTP/AVP 0", h.ip, h.ip, port)
	if telephoneEvent {
		sdp += " 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"
	} else {
		sdp += "\r\na=rtpmap:0 PCMU/8000\r\n"
	}
	sdp += "a=sendrecv\r\n"
	ua.OnIncoming(func(in *sipua.Incoming) {
		d, err := in.Answer([]byte(sdp), sipua.DialogHandler{DTMF: func(d sipua.DTMF) {
			p.mu.Lock()
			p.info = append(p.info, string(d.Digit))
			p.mu.Unlock()
		}})
		if err == nil {
			p.answered <- d
		}
	})
	if _, err := ua.Registration(user).Register(w.ctx, time.Minute); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *infoPhone) readRTP() {
	buf := make([]byte, 1500)
	for {
		n, _, err := p.rtp.ReadFrom(buf)
		if err != nil {
			return
		}
		var pkt rtp.Packet
		if pkt.Unmarshal(buf[:n]) != nil || pkt.PayloadType != 101 || len(pkt.Payload) < 4 {
			continue
		}
		end := pkt.Payload[1]&0x80 != 0
		p.mu.Lock()
		if end && pkt.Timestamp != p.lastEvent && int(pkt.Payload[0]) < len(dtmfDigits) {
			p.lastEvent = pkt.Timestamp
			p.events = append(p.events, string(dtmfDigits[pkt.Payload[0]]))
		}
		p.mu.Unlock()
	}
}

func (p *infoPhone) digits() (info, events string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.info, ""), strings.Join(p.events, "")
}

// dtmfReport is what the DTMF scenario measured.
type dtmfReport struct {
	PhoneINFO, PhoneRTP string // digits the phone got by SIP INFO and by RFC 4733
	ClientGot           []webclient.DTMFEvent
}

// dtmfCall places a call from the client to an infoPhone (with or without telephone-event)
// and sends DTMF both ways: a dtmf message "5", then the client's in-band "9#" (overlapping the
// message's generated event when overlap is set, else once it is through), then the phone's
// SIP INFO "7"; it reports what each end got.
func dtmfCall(n network, telephoneEvent, overlap bool) (dtmfReport, error) {
	return inWorld(n, func(w *world) (dtmfReport, error) {
		var rep dtmfReport
		phone, err := w.infoPhone("1001", telephoneEvent)
		if err != nil {
			return rep, err
		}
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
		if _, err := c.WaitState(ctx, string(signaling.LocalAcceptedByRemote)); err != nil {
			return rep, err
		}
		var d *sipua.Dialog
		select {
		case d = <-phone.answered:
		case <-ctx.Done():
			return rep, errTimeout
		}
		if err := c.WaitConnected(ctx); err != nil {
			return rep, err
		}
		By("the client: a dtmf message, then RFC 4733 events in its audio")
		if err := c.SendDTMFMessage(ctx, "5", 100*time.Millisecond); err != nil {
			return rep, err
		}
		// Without overlap, the in-band events start once the message's event is through:
		// the phone has its digit, and the gateway's repeated end packets are sent. With
		// it, they start while the gateway still sends the generated event, which must
		// then end first (one event at a time in the SIP stream).
		if !overlap {
			_ = waitFor(ctx, 3*time.Second, func() bool { info, ev := phone.digits(); return len(info)+len(ev) >= 1 })
			time.Sleep(300 * time.Millisecond)
		}
		// The gateway always offers the client telephone-event (browsers send DTMF
		// in-band): without it on the SIP side, the bridge consumes the events and
		// the gateway sends their digits as SIP INFO.
		if err := c.SendDTMF(ctx, "9#", 100*time.Millisecond); err != nil {
			return rep, err
		}
		By("the phone: SIP INFO")
		if err := d.SendDTMF(ctx, sipua.DTMF{Digit: '7', Duration: 160 * time.Millisecond}); err != nil {
			return rep, err
		}
		_ = waitFor(ctx, 3*time.Second, func() bool {
			info, ev := phone.digits()
			return len(info)+len(ev) >= 3 && len(c.DTMF()) >= 1
		})
		time.Sleep(200 * time.Millisecond)
		rep.PhoneINFO, rep.PhoneRTP = phone.digits()
		rep.ClientGot = c.DTMF()
		if err := c.Hangup(ctx, ""); err != nil {
			return rep, err
		}
		return rep, w.quiesce()
	})
}

var _ = Describe("During a call", Label("interop"), func() {
	for _, n := range networks {
		Context("over "+n.name, func() {
			DescribeTable("carries DTMF both ways",
				func(telephoneEvent bool, wantINFO, wantRTP string, overlap bool) {
					rep, err := dtmfCall(n, telephoneEvent, overlap)
					Expect(err).NotTo(HaveOccurred())
					AddReportEntry("dtmf", fmt.Sprintf("phone INFO %q, phone RFC 4733 %q, client %d event(s)", rep.PhoneINFO, rep.PhoneRTP, len(rep.ClientGot)))
					Expect(rep.PhoneINFO).To(Equal(wantINFO))
					Expect(rep.PhoneRTP).To(Equal(wantRTP))
					Expect(rep.ClientGot).To(ContainElement(And(HaveField("Digit", "7"), HaveField("Source", webclient.DTMFFromMessage))))
				},
				Entry("the SIP side negotiated no telephone-event: dtmf messages and in-band events go as SIP INFO", false, "59#", "", false),
				Entry("the SIP side negotiated telephone-event: dtmf messages and in-band events go as RFC 4733", true, "", "59#", false),
				// Overlapping: the client starts its in-band events while the gateway still sends
				// the dtmf message's generated event on the SIP stream. RFC 4733 senders send one
				// event at a time; before gateway/media kept them apart, the two events overlapped
				// and receivers counted a digit twice: "595#" at the phone behind the embedded PBX
				// (which relays the packets), "559#" and "59595#" behind Asterisk (which converts
				// them to INFO or regenerates them). Now a forwarded event ends the generated one.
				Entry("overlapping: the client's in-band events start while the dtmf message's event is still sent (no telephone-event at the phone)", false, "59#", "", true),
				Entry("overlapping: the client's in-band events start while the dtmf message's event is still sent (telephone-event at the phone)", true, "", "59#", true),
			)

			It("follows the phone's hold and resume (re-INVITE) and keeps the audio flowing after", func() {
				type holdReport struct {
					HoldAnswer, ResumeAnswer  string
					ClientBefore, ClientAfter uint64
					PhoneBefore, PhoneAfter   uint64
				}
				rep, err := inWorld(n, func(w *world) (holdReport, error) {
					var rep holdReport
					ctx, cancel := context.WithTimeout(w.ctx, 20*time.Second)
					defer cancel()
					c, pc, err := w.audioCall(ctx)
					if err != nil {
						return rep, err
					}
					local := string(pc.LocalSDP())
					ans, err := pc.Dialog().Reinvite(ctx, []byte(strings.Replace(local, "a=sendrecv", "a=sendonly", 1)))
					if err != nil {
						return rep, fmt.Errorf("hold: %w", err)
					}
					rep.HoldAnswer = string(ans)
					time.Sleep(500 * time.Millisecond)
					ans, err = pc.Dialog().Reinvite(ctx, []byte(local))
					if err != nil {
						return rep, fmt.Errorf("resume: %w", err)
					}
					rep.ResumeAnswer = string(ans)
					rep.ClientBefore, rep.PhoneBefore = c.Stats().Audio.PacketsReceived, pc.Media().Stats().PacketsReceived
					time.Sleep(time.Second)
					rep.ClientAfter, rep.PhoneAfter = c.Stats().Audio.PacketsReceived, pc.Media().Stats().PacketsReceived
					if err := pc.Hangup(ctx); err != nil {
						return rep, err
					}
					return rep, w.quiesce()
				})
				Expect(err).NotTo(HaveOccurred())
				if n.asterisk() {
					// Asterisk answers the phone's hold itself (its own SDP, session name
					// "Asterisk") and keeps the gateway's leg up.
					Expect(rep.HoldAnswer).To(And(ContainSubstring("a=recvonly"), ContainSubstring("s=Asterisk")), "Asterisk answers a hold (sendonly) with recvonly")
				} else {
					Expect(rep.HoldAnswer).To(ContainSubstring("a=recvonly"), "the gateway answers a hold (sendonly) with recvonly")
				}
				Expect(rep.ResumeAnswer).To(ContainSubstring("a=sendrecv"))
				Expect(rep.ClientAfter-rep.ClientBefore).To(BeNumerically(">=", 40), "audio reaches the client after the resume")
				Expect(rep.PhoneAfter-rep.PhoneBefore).To(BeNumerically(">=", 40), "audio reaches the phone after the resume")
			})

			It("passes the client's hold and resume to the SIP side (re-INVITE sendonly, then sendrecv)", func() {
				rep, err := inWorld(n, clientHold)
				Expect(err).NotTo(HaveOccurred())
				AddReportEntry("client hold", fmt.Sprintf("held 1 s: client got %d, phone got %d packets; after the resume: client %d, phone %d", rep.HeldClient, rep.HeldPhone, rep.ClientAfter, rep.PhoneAfter))
				if n.backend == pbx.BackendEmbedded {
					// The embedded PBX relays a re-INVITE's offer to the other leg with its
					// direction (container PBXs answer a hold themselves, with music on hold).
					Expect(rep.HoldOffer).To(ContainSubstring("a=sendonly"), "the phone is offered the client's hold")
					Expect(rep.ResumeOffer).To(ContainSubstring("a=sendrecv"), "the phone is offered the client's resume")
					Expect(rep.HeldPhone).To(BeNumerically(">=", 40), "a sendonly hold still carries the client's audio to the phone")
				}
				// Not checked: the direction of the gateway's answer to the client. pion answers a
				// sendonly re-offer on a sendrecv transceiver with sendrecv (it only narrows a new
				// transceiver's direction), and has no public setter to do better.
				Expect(rep.HeldClient).To(BeNumerically("<=", 2), "no audio reaches the client while it holds")
				Expect(rep.ClientAfter).To(BeNumerically(">=", 40), "audio reaches the client after the resume")
				Expect(rep.PhoneAfter).To(BeNumerically(">=", 40), "audio reaches the phone after the resume")
			})
		})
	}
})

// clientHoldReport is what clientHold measured: the SIP offers the phone got, the gateway's
// answer to the client's hold, and the audio packets each end received in a second of hold and
// a second after the resume.
type clientHoldReport struct {
	HoldOffer, ResumeOffer  string
	HeldClient, HeldPhone   uint64
	ClientAfter, PhoneAfter uint64
}

// clientHold places a call from the client to a phone, then the client holds (sendonly) and
// resumes (sendrecv) with new offers; the gateway re-INVITEs the SIP side each time.
func clientHold(w *world) (clientHoldReport, error) {
	var rep clientHoldReport
	ctx, cancel := context.WithTimeout(w.ctx, 30*time.Second)
	defer cancel()
	c, pc, err := w.audioCall(ctx)
	if err != nil {
		return rep, err
	}
	received := func() (uint64, uint64) {
		return c.Stats().Audio.PacketsReceived, pc.Media().Stats().PacketsReceived
	}
	By("the client holds")
	if err := c.Hold(ctx, "sendonly"); err != nil {
		return rep, fmt.Errorf("hold: %w", err)
	}
	rep.HoldOffer = string(pc.RemoteSDP())
	time.Sleep(300 * time.Millisecond) // the packets on their way before the hold arrive
	c0, p0 := received()
	time.Sleep(time.Second)
	c1, p1 := received()
	rep.HeldClient, rep.HeldPhone = c1-c0, p1-p0
	By("the client resumes")
	if err := c.Resume(ctx); err != nil {
		return rep, fmt.Errorf("resume: %w", err)
	}
	rep.ResumeOffer = string(pc.RemoteSDP())
	time.Sleep(300 * time.Millisecond)
	c0, p0 = received()
	time.Sleep(time.Second)
	c1, p1 = received()
	rep.ClientAfter, rep.PhoneAfter = c1-c0, p1-p0
	if err := c.Hangup(ctx, ""); err != nil {
		return rep, err
	}
	return rep, w.quiesce()
}
