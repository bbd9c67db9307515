package sipphone

import (
	"log/slog"
	"testing"
	"time"

	"github.com/pion/rtp"
)

func TestMediaCountsLossDuplicatesAndReordering(t *testing.T) {
	m := &Media{log: slog.New(slog.DiscardHandler), logCap: 3, sources: map[uint32]*sourceState{}}
	now := time.Unix(0, 0)
	// 65534..3 with 1 lost, 0 duplicated and 2 late; the sequence number wraps on the way.
	for i, seq := range []uint16{65534, 65535, 0, 0, 3, 2} {
		pkt := &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: uint32(i) * 160, SSRC: 7}, Payload: make([]byte, 160)}
		m.record(now.Add(time.Duration(i)*20*time.Millisecond), pkt, 172)
	}
	s := m.Stats()
	if s.PacketsReceived != 6 || s.Duplicates != 1 || s.Lost != 1 || s.Reordered != 1 || s.SSRCs != 1 {
		t.Errorf("stats %+v; want 6 received, 1 duplicate, 1 lost, 1 reordered", s)
	}
	if recs := m.Received(); len(recs) != 3 || recs[2].Seq != 0 || recs[0].Size != 172 {
		t.Errorf("log %+v; want the first 3 packets", recs)
	}
}
