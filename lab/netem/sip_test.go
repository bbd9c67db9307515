package netem_test

import (
	"context"
	"log/slog"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/siprtc/siprtc/internal/sipnet"
	"github.com/siprtc/siprtc/lab/netem"
)

// TestSIPOverShapedLink: a sipgo client and server run unchanged over shaped hosts: a
// transaction takes one round trip, and SIP's own retransmissions (Timer A, 500 ms) recover the
// requests the phone's lossy uplink drops.
func TestSIPOverShapedLink(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		nw, err := netem.New("", netem.WithSeed(5))
		must(t, err)
		pbx, _ := nw.AddHost("pbx", "")
		phone, _ := nw.AddHost("phone", "")
		delay := netem.DelayModel{Base: 25 * time.Millisecond}
		must(t, phone.Up.Set(netem.LinkConfig{Delay: delay, Loss: netem.LossModel{Kind: netem.LossBernoulli, Rate: 0.2}}))
		must(t, phone.Down.Set(netem.LinkConfig{Delay: delay}))
		must(t, nw.Start())
		log := slog.New(slog.DiscardHandler)

		srv, err := sipnet.Listen(sipnet.Config{Net: pbx.Net, Bind: netip.AddrPortFrom(pbx.IP, 5060), Logger: log})
		must(t, err)
		srv.Server.OnOptions(func(req *sip.Request, tx sip.ServerTransaction) {
			_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil))
		})
		must(t, srv.Serve(ctx))
		cli, err := sipnet.Listen(sipnet.Config{Net: phone.Net, Bind: netip.AddrPortFrom(phone.IP, 0), Logger: log})
		must(t, err)
		must(t, cli.Serve(ctx))

		const rtt = 50 * time.Millisecond
		var direct, retransmitted int
		for i := range 30 {
			start := time.Now()
			req := sip.NewRequest(sip.OPTIONS, sip.Uri{Scheme: "sip", User: "probe", Host: pbx.IP.String(), Port: 5060})
			res, err := cli.Client.Do(ctx, req)
			if err != nil {
				t.Fatalf("OPTIONS %d: %v", i, err)
			}
			took := time.Since(start)
			switch {
			case res.StatusCode != sip.StatusOK:
				t.Fatalf("OPTIONS %d: %d", i, res.StatusCode)
			case took == rtt:
				direct++
			case took >= 500*time.Millisecond+rtt:
				retransmitted++
			default:
				t.Errorf("OPTIONS %d took %v: neither one round trip (%v) nor after a retransmission", i, took, rtt)
			}
		}
		t.Logf("30 OPTIONS: %d in one round trip, %d after retransmissions; phone/up %d dropped", direct, retransmitted, phone.Up.Stats().DroppedLoss)
		if direct == 0 || retransmitted == 0 {
			t.Errorf("%d direct, %d retransmitted: want both", direct, retransmitted)
		}
		must(t, cli.Close())
		must(t, srv.Close())
		must(t, nw.Close())
	})
}
