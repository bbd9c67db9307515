package interop_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/pion/transport/v5"

	"github.com/siprtc/siprtc/gateway/call"
	"github.com/siprtc/siprtc/gateway/signaling"
	"github.com/siprtc/siprtc/gateway/sipua"
	"github.com/siprtc/siprtc/lab"
	"github.com/siprtc/siprtc/lab/netem"
	"github.com/siprtc/siprtc/lab/pbx"
	"github.com/siprtc/siprtc/lab/peers/sipphone"
	"github.com/siprtc/siprtc/lab/peers/webclient"
)

// sipTap is a transport.Net that notes the in-dialog requests the gateway's SIP socket sends:
// the session refreshes (UPDATE, or a re-INVITE: an INVITE whose To has a tag), one per CSeq.
type sipTap struct {
	transport.Net
	mu        sync.Mutex
	refreshes map[string]bool // "UPDATE 3", "INVITE 4"
}

func (t *sipTap) ListenPacket(network, address string) (net.PacketConn, error) {
	c, err := t.Net.ListenPacket(network, address)
	if err != nil {
		return nil, err
	}
	return &sipTapConn{PacketConn: c, t: t}, nil
}

type sipTapConn struct {
	net.PacketConn
	t *sipTap
}

func (c *sipTapConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	c.t.note(string(b))
	return c.PacketConn.WriteTo(b, addr)
}

func (t *sipTap) note(msg string) {
	isUpdate, isInvite := strings.HasPrefix(msg, "UPDATE "), strings.HasPrefix(msg, "INVITE ")
	if !isUpdate && !isInvite {
		return
	}
	var to, cseq string
	for _, line := range strings.Split(msg, "\r\n") {
		name, value, _ := strings.Cut(line, ":")
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "to", "t":
			to = value
		case "cseq":
			cseq = strings.TrimSpace(value)
		}
	}
	if isInvite && !strings.Contains(to, ";tag=") {
		return // the INVITE that set the dialog up
	}
	t.mu.Lock()
	t.refreshes[cseq] = true
	t.mu.Unlock()
}

func (t *sipTap) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.refreshes)
}

// timerCall places a call from alice to the phone 1001 and waits for its audio.
func timerCall(ctx context.Context, w *world) (*webclient.Call, *sipphone.Phone, error) {
	phone, err := w.phone("1001")
	if err != nil {
		return nil, nil, err
	}
	cl, err := w.client("alice")
	if err != nil {
		return nil, nil, err
	}
	c, err := cl.Call(ctx, "1001")
	if err != nil {
		return nil, nil, err
	}
	if _, err := c.WaitState(ctx, string(signaling.LocalAcceptedByRemote)); err != nil {
		return nil, nil, err
	}
	return c, phone, c.WaitMedia(ctx, 25, 0)
}

// The session timer specs run on the emulated network only: in virtual time, the 90 s session
// interval costs nothing (on loopback it would cost its minutes in real time).
var _ = Describe("Session timers (RFC 4028)", Label("interop"), func() {
	if !lab.Selected(pbx.BackendEmbedded) {
		return
	}
	const interval = 90 * time.Second
	timers := withConf(fmt.Sprintf("session_expires=%d\nmin_se=90\n", int(interval/time.Second)))

	It("refreshes the session through the PBX: the call outlives session_expires, its audio flowing", func() {
		type refreshReport struct {
			Refreshes        int
			Ended            bool
			AudioLastSecond  uint64
			EndReason        string
			RecordEndReasons []string
		}
		tap := &sipTap{refreshes: map[string]bool{}}
		rep, err := inWorld(embeddedEmulated, func(w *world) (refreshReport, error) {
			var rep refreshReport
			ctx, cancel := context.WithTimeout(w.ctx, 5*time.Minute)
			defer cancel()
			c, _, err := timerCall(ctx, w)
			if err != nil {
				return rep, err
			}
			time.Sleep(2*interval + 20*time.Second)
			rep.Refreshes = tap.count()
			select {
			case <-c.Done():
				rep.Ended, rep.EndReason = true, c.EndReason()
				return rep, nil
			default:
			}
			before := c.Stats().Audio.PacketsReceived
			time.Sleep(time.Second)
			rep.AudioLastSecond = c.Stats().Audio.PacketsReceived - before
			if err := c.Hangup(ctx, ""); err != nil {
				return rep, err
			}
			err = w.quiesce()
			for _, r := range w.records() {
				rep.RecordEndReasons = append(rep.RecordEndReasons, r.EndReason)
			}
			return rep, err
		}, timers, withSIP(func(c *sipua.Config) { tap.Net = c.Net; c.Net = tap }))
		Expect(err).NotTo(HaveOccurred())
		AddReportEntry("session refresh", fmt.Sprintf("%d refresh(es) in %v with session_expires %v; audio in the last second %d", rep.Refreshes, 2*interval+20*time.Second, interval, rep.AudioLastSecond))
		Expect(rep.Ended).To(BeFalse(), "the call ended: %s", rep.EndReason)
		Expect(rep.Refreshes).To(BeNumerically(">=", 4), "the gateway (refresher) refreshes every half interval")
		Expect(rep.AudioLastSecond).To(BeNumerically(">=", 40))
		Expect(rep.RecordEndReasons).To(ConsistOf(ContainSubstring("hung up by the WebRTC user")))
	})

	It("ends the call when the session cannot be refreshed (PBX unreachable): the client is told, the record says why", func() {
		type expiryReport struct {
			EndedAfter time.Duration
			EndReason  string
			Records    []call.Record
		}
		outage := 2 * interval
		rep, err := inWorld(embeddedEmulated, func(w *world) (expiryReport, error) {
			var rep expiryReport
			ctx, cancel := context.WithTimeout(w.ctx, 10*time.Minute)
			defer cancel()
			c, phone, err := timerCall(ctx, w)
			if err != nil {
				return rep, err
			}
			pbxHost := w.hosts["pbx"].netem
			start := time.Now()
			down := netem.LinkConfig{Outages: []netem.Outage{{Start: time.Since(w.nw.StartTime()), Duration: outage}}}
			if err := pbxHost.Up.Set(down); err != nil {
				return rep, err
			}
			if err := pbxHost.Down.Set(down); err != nil {
				return rep, err
			}
			select {
			case <-c.Done():
				rep.EndedAfter, rep.EndReason = time.Since(start), c.EndReason()
			case <-time.After(outage):
				return rep, fmt.Errorf("the call outlived a %v outage with session_expires %v", outage, interval)
			}
			// The PBX still holds its legs: once it is back, the phone hangs up (its BYE reaches
			// a gateway that forgot the dialog) and the world quiesces.
			time.Sleep(outage - time.Since(start) + time.Second)
			for _, pc := range phone.Calls() {
				_ = pc.Hangup(ctx)
			}
			err = w.quiesce()
			rep.Records = w.records()
			return rep, err
		}, timers)
		Expect(err).NotTo(HaveOccurred())
		AddReportEntry("session expiry", fmt.Sprintf("call ended %v after the PBX became unreachable: %q", rep.EndedAfter, rep.EndReason))
		// The refresh at half the interval gets no answer within 64*T1 (32 s): the session is
		// taken as expired and the call ends then, before the interval runs out.
		Expect(rep.EndedAfter).To(BeNumerically("<=", interval))
		Expect(rep.EndReason).To(ContainSubstring("session expired"))
		Expect(rep.Records).To(HaveLen(1))
		Expect(rep.Records[0].EndReason).To(Equal("SIP session expired"))
		Expect(rep.Records[0].Outcome).To(Equal(call.OutcomeAnswered))
	})
})
