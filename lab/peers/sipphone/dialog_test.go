package sipphone

import (
	"sync/atomic"
	"testing"

	"github.com/emiago/sipgo/sip"
)

func mustParse(t *testing.T, raw string) sip.Message {
	t.Helper()
	msg, err := sip.ParseMessage([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

func TestDialogRequestsFollowTheRouteSet(t *testing.T) {
	invite := mustParse(t, "INVITE sip:bob@lab SIP/2.0\r\n"+
		"Via: SIP/2.0/UDP 10.77.0.2:5060;branch=z9hG4bK.1\r\n"+
		"From: <sip:alice@lab>;tag=a\r\nTo: <sip:bob@lab>\r\nCall-ID: c1\r\nCSeq: 10 INVITE\r\n"+
		"Contact: <sip:alice@10.77.0.2:5060>\r\nContent-Length: 0\r\n\r\n").(*sip.Request)
	ok := mustParse(t, "SIP/2.0 200 OK\r\n"+
		"Via: SIP/2.0/UDP 10.77.0.2:5060;branch=z9hG4bK.1\r\n"+
		"Record-Route: <sip:10.77.0.9:5070;lr>, <sip:10.77.0.8;lr>\r\n"+
		"From: <sip:alice@lab>;tag=a\r\nTo: <sip:bob@lab>;tag=b\r\nCall-ID: c1\r\nCSeq: 10 INVITE\r\n"+
		"Contact: <sip:bob@10.77.0.3:5062>\r\nContent-Length: 0\r\n\r\n").(*sip.Response)

	seq := new(atomic.Uint32)
	seq.Store(10)
	d := uacDialog(invite, ok, seq, "")
	if d.key() != dialogKey("c1", "a", "b") {
		t.Errorf("key %s", d.key())
	}
	bye := d.request(sip.BYE, 0)
	routes := bye.GetHeaders("Route")
	if bye.Recipient.String() != "sip:bob@10.77.0.3:5062" || len(routes) != 2 ||
		routes[0].Value() != "<sip:10.77.0.8;lr>" || routes[1].Value() != "<sip:10.77.0.9:5070;lr>" {
		t.Errorf("BYE %s with routes %v: want the remote target and the Record-Route reversed", bye.Recipient.String(), routes)
	}
	if bye.Destination() != "10.77.0.8:5060" || bye.CSeq().SeqNo != 11 {
		t.Errorf("BYE to %s with CSeq %d, want the first route and 11", bye.Destination(), bye.CSeq().SeqNo)
	}
	if tag, _ := bye.To().Params.Get("tag"); tag != "b" {
		t.Errorf("BYE To tag %q", tag)
	}
	if ack := d.request(sip.ACK, 10); ack.CSeq().SeqNo != 10 || ack.CSeq().MethodName != sip.ACK {
		t.Errorf("ACK CSeq %v, want the INVITE's number", ack.CSeq())
	}

	// The callee's side of the same INVITE, after it passed a proxy that recorded its route.
	invite.PrependHeader(&sip.RecordRouteHeader{Address: sip.Uri{Host: "10.77.0.9", Port: 5070}}) // strict
	uas := uasDialog(invite, "b", 500, "10.77.0.2:5060")
	req := uas.request(sip.BYE, 0)
	routes = req.GetHeaders("Route")
	if req.Recipient.String() != "sip:10.77.0.9:5070" || len(routes) != 1 || routes[0].Value() != "<sip:alice@10.77.0.2:5060>" {
		t.Errorf("strict routing: BYE %s, routes %v", req.Recipient.String(), routes)
	}
	if req.Destination() != "10.77.0.9:5070" || req.CSeq().SeqNo != 501 {
		t.Errorf("callee's BYE to %s, CSeq %d", req.Destination(), req.CSeq().SeqNo)
	}
	if from, _ := req.From().Params.Get("tag"); from != "b" {
		t.Errorf("callee's BYE From tag %q", from)
	}
}
