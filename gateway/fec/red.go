package fec

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/pion/rtp"
)

// RFC 2198 limits: a redundant block's timestamp offset has 14 bits, its length 10.
const (
	maxREDOffset = 1<<14 - 1
	maxREDLength = 1<<10 - 1
	// MaxREDDistance is the most earlier payloads one RED packet repeats (REDEncoder) or that
	// REDDecoder reads.
	MaxREDDistance = 32
	// redHistory is how many sequence numbers REDDecoder remembers (a power of two).
	redHistory = 256
)

// Why REDDecoder rejects a packet.
var (
	ErrREDTruncated    = errors.New("fec: RED payload truncated")
	ErrREDTooManyBlock = errors.New("fec: RED payload with too many redundant blocks")
)

// REDEncoder frames the packets of one stream as RFC 2198 redundant audio. Not safe for
// concurrent use.
type REDEncoder struct {
	pt       uint8
	distance int
	hist     []redFrame // indexed by sequence number modulo len
	newest   uint16
	started  bool
}

type redFrame struct {
	valid bool
	seq   uint16
	ts    uint32
	pt    uint8
	data  []byte
}

// NewREDEncoder returns an encoder that sends with payload type redPT and repeats the
// distance previous payloads (0: the primary only, still RED-framed; at most
// MaxREDDistance).
func NewREDEncoder(redPT uint8, distance int) *REDEncoder {
	distance = min(max(distance, 0), MaxREDDistance)
	return &REDEncoder{pt: redPT & 0x7f, distance: distance, hist: make([]redFrame, max(distance, 1))}
}

// Encode returns p as a RED packet: a new packet with p's header (its CSRC and extensions
// copied) and payload type redPT, whose payload carries the payloads of the packets
// p.SequenceNumber-distance .. p.SequenceNumber-1 the encoder was given (oldest first, each
// with a 4-byte header: its payload type, the timestamp offset from p, its length), then p's
// own payload behind a 1-byte header (RFC 2198 section 3, libwebrtc's layout). An earlier
// payload that does not fit (an offset of 2^14 or more, a length of 1024 or more, a
// timestamp not older than the next block's, or a packet the encoder was not given) is left
// out, and so are the ones before it: the receiver numbers the blocks by their distance from
// the primary. p's payload is copied; p is not changed.
func (e *REDEncoder) Encode(p *rtp.Packet) *rtp.Packet {
	n := 0 // redundant blocks: p-1 .. p-n
	size := 1 + len(p.Payload)
	prevOff := uint32(0)
	for k := 1; k <= e.distance; k++ {
		seq := p.SequenceNumber - uint16(k)
		f := &e.hist[int(seq)%len(e.hist)]
		// Offsets must grow with age (the decoder checks it): a stream whose timestamps went
		// back (a new source behind the same SSRC) gets no redundancy across the jump.
		off := p.Timestamp - f.ts
		if !f.valid || f.seq != seq || off <= prevOff || off > maxREDOffset || len(f.data) > maxREDLength {
			break
		}
		n, prevOff = k, off
		size += 4 + len(f.data)
	}
	out := &rtp.Packet{Header: p.Header.Clone()}
	out.PayloadType = e.pt
	payload := make([]byte, size)
	at := 0
	for k := n; k >= 1; k-- { // headers, oldest first
		f := &e.hist[int(p.SequenceNumber-uint16(k))%len(e.hist)]
		off := p.Timestamp - f.ts
		payload[at] = 0x80 | f.pt
		payload[at+1] = byte(off >> 6)
		payload[at+2] = byte(off<<2) | byte(len(f.data)>>8)
		payload[at+3] = byte(len(f.data))
		at += 4
	}
	payload[at] = p.PayloadType & 0x7f
	at++
	for k := n; k >= 1; k-- {
		at += copy(payload[at:], e.hist[int(p.SequenceNumber-uint16(k))%len(e.hist)].data)
	}
	copy(payload[at:], p.Payload)
	out.Payload = payload

	// Remember p, unless it is older than what the encoder has seen (a retransmission): it
	// would take the place of a newer payload.
	if e.distance > 0 && (!e.started || int16(p.SequenceNumber-e.newest) > 0) {
		e.started, e.newest = true, p.SequenceNumber
		f := &e.hist[int(p.SequenceNumber)%len(e.hist)]
		f.valid, f.seq, f.ts, f.pt = true, p.SequenceNumber, p.Timestamp, p.PayloadType&0x7f
		f.data = append(f.data[:0], p.Payload...)
	}
	return out
}

// REDStats counts what a REDDecoder did.
type REDStats struct {
	// Primaries are the RED packets decoded (each carries one primary block).
	Primaries uint64
	// Passthrough are packets of another payload type, returned unchanged.
	Passthrough uint64
	// Redundant are the redundant blocks read.
	Redundant uint64
	// Recovered are redundant blocks returned as packets: theirs had not been seen.
	Recovered uint64
	// Duplicate are redundant blocks whose packet had already been seen (received or
	// recovered): the usual case without loss.
	Duplicate uint64
	// Unused are redundant blocks left out for another reason: older than the decoder's
	// history, or inconsistent with the timestamps of the packets around them.
	Unused uint64
	// Malformed are packets rejected with an error.
	Malformed uint64
}

type redCounters struct {
	primaries, passthrough, redundant, recovered, duplicate, unused, malformed atomic.Uint64
}

// REDDecoder unframes the RFC 2198 packets of one stream. Not safe for concurrent use;
// Stats is.
type REDDecoder struct {
	pt      uint8
	seen    [redHistory]seenEntry
	highest uint16
	started bool
	behind  int // packets in a row behind the history
	c       redCounters
}

type seenEntry struct {
	valid bool
	seq   uint16
	ts    uint32
}

// NewREDDecoder returns a decoder for packets of payload type redPT.
func NewREDDecoder(redPT uint8) *REDDecoder {
	return &REDDecoder{pt: redPT & 0x7f}
}

// Stats returns the decoder's counters.
func (d *REDDecoder) Stats() REDStats {
	return REDStats{
		Primaries: d.c.primaries.Load(), Passthrough: d.c.passthrough.Load(), Redundant: d.c.redundant.Load(),
		Recovered: d.c.recovered.Load(), Duplicate: d.c.duplicate.Load(), Unused: d.c.unused.Load(),
		Malformed: d.c.malformed.Load(),
	}
}

type redBlock struct {
	pt     uint8
	offset uint32
	length int
}

// Decode unframes p. A packet of another payload type is returned alone, unchanged. A RED
// packet gives, in sequence order, the packets its redundant blocks repeat that the decoder
// has not seen yet (block k before the primary is sequence number p.SequenceNumber-k,
// timestamp p.Timestamp minus its offset, with the block's payload type, p's SSRC and CSRC,
// no marker, extension or padding), then the primary (p's header with the primary block's
// payload type). A block is left out when its packet was seen (received, or recovered from an
// earlier RED packet), is older than the decoder's history (256 packets), or has a timestamp
// that contradicts the packets seen around it. The primary is always returned. Payloads alias
// p.Payload, and the headers share p's CSRC and extension slices. A malformed payload is an
// error, and nothing is returned.
func (d *REDDecoder) Decode(p *rtp.Packet) ([]*rtp.Packet, error) {
	if p.PayloadType&0x7f != d.pt {
		d.c.passthrough.Add(1)
		d.resync(p.SequenceNumber)
		d.see(p.SequenceNumber, p.Timestamp)
		return []*rtp.Packet{p}, nil
	}
	var blocks [MaxREDDistance]redBlock
	n, at, primaryPT, err := parseRED(p.Payload, &blocks)
	if err != nil {
		d.c.malformed.Add(1)
		return nil, err
	}
	d.c.primaries.Add(1)
	d.c.redundant.Add(uint64(n))
	d.resync(p.SequenceNumber)

	// A block whose offsets do not decrease toward the primary cannot be numbered: the whole
	// redundancy of this packet is left out.
	consistent := true
	for j := range n {
		next := uint32(0)
		if j+1 < n {
			next = blocks[j+1].offset
		}
		if blocks[j].offset <= next {
			consistent = false
		}
	}

	out := make([]*rtp.Packet, 0, n+1)
	pkts := make([]rtp.Packet, n+1)
	d.advance(p.SequenceNumber)
	for j := range n {
		b := blocks[j]
		data := p.Payload[at : at+b.length]
		at += b.length
		seq := p.SequenceNumber - uint16(n-j)
		ts := p.Timestamp - b.offset
		switch {
		case !consistent || d.tooOld(seq):
			d.c.unused.Add(1)
			continue
		case d.seenSeq(seq):
			d.c.duplicate.Add(1)
			continue
		case !d.fits(seq, ts):
			d.c.unused.Add(1)
			continue
		}
		d.see(seq, ts)
		d.c.recovered.Add(1)
		r := &pkts[len(out)]
		r.Header = rtp.Header{Version: 2, PayloadType: b.pt, SequenceNumber: seq, Timestamp: ts, SSRC: p.SSRC, CSRC: p.CSRC}
		r.Payload = data
		out = append(out, r)
	}
	primary := &pkts[len(out)]
	primary.Header = p.Header
	primary.PayloadType = primaryPT
	primary.Payload = p.Payload[at:]
	d.see(p.SequenceNumber, p.Timestamp)
	return append(out, primary), nil
}

// parseRED reads the block headers into blocks and returns how many redundant blocks there
// are, where their data starts, and the primary's payload type.
func parseRED(pl []byte, blocks *[MaxREDDistance]redBlock) (n, at int, primaryPT uint8, err error) {
	total := 0
	for {
		if at >= len(pl) {
			return 0, 0, 0, ErrREDTruncated
		}
		if pl[at]&0x80 == 0 {
			primaryPT = pl[at] & 0x7f
			at++
			break
		}
		if at+4 > len(pl) {
			return 0, 0, 0, ErrREDTruncated
		}
		if n == MaxREDDistance {
			return 0, 0, 0, fmt.Errorf("%w: more than %d", ErrREDTooManyBlock, MaxREDDistance)
		}
		b := &blocks[n]
		b.pt = pl[at] & 0x7f
		b.offset = uint32(pl[at+1])<<6 | uint32(pl[at+2])>>2
		b.length = int(pl[at+2]&0x03)<<8 | int(pl[at+3])
		total += b.length
		n++
		at += 4
	}
	if at+total > len(pl) {
		return 0, 0, 0, fmt.Errorf("%w: blocks of %d bytes after %d bytes of headers in %d", ErrREDTruncated, total, at, len(pl))
	}
	return n, at, primaryPT, nil
}

// advance moves the history's front to seq when seq is newer; a jump past the whole history
// (a new source, a restart) forgets it.
func (d *REDDecoder) advance(seq uint16) {
	if !d.started {
		d.started, d.highest = true, seq
		return
	}
	diff := int16(seq - d.highest)
	if diff <= 0 {
		return
	}
	if int(diff) >= redHistory {
		d.seen = [redHistory]seenEntry{}
	}
	d.highest = seq
}

// resync starts the history over at seq after a run of packets behind it: the sender
// restarted its sequence numbers.
func (d *REDDecoder) resync(seq uint16) {
	if !d.tooOld(seq) {
		d.behind = 0
		return
	}
	if d.behind++; d.behind >= resyncAfter {
		d.seen = [redHistory]seenEntry{}
		d.highest, d.behind = seq, 0
	}
}

// tooOld: seq is behind the history, so whether it was seen is unknown.
func (d *REDDecoder) tooOld(seq uint16) bool {
	return d.started && int(int16(d.highest-seq)) >= redHistory
}

func (d *REDDecoder) seenSeq(seq uint16) bool {
	e := &d.seen[int(seq)%redHistory]
	return e.valid && e.seq == seq
}

// fits reports whether timestamp ts lies strictly between the timestamps of the neighbours of
// seq that were seen: a block numbered wrongly (its sender skipped one) would not.
func (d *REDDecoder) fits(seq uint16, ts uint32) bool {
	if e := &d.seen[int(seq-1)%redHistory]; e.valid && e.seq == seq-1 && int32(ts-e.ts) <= 0 {
		return false
	}
	if e := &d.seen[int(seq+1)%redHistory]; e.valid && e.seq == seq+1 && int32(e.ts-ts) <= 0 {
		return false
	}
	return true
}

func (d *REDDecoder) see(seq uint16, ts uint32) {
	d.advance(seq)
	if d.tooOld(seq) {
		return
	}
	d.seen[int(seq)%redHistory] = seenEntry{valid: true, seq: seq, ts: ts}
}
