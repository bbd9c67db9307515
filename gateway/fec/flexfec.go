package fec

import (
	"encoding/binary"
	"errors"
	"math/bits"
	"sync/atomic"

	"github.com/pion/rtp"
)

// FlexFEC-03 header (draft-ietf-payload-flexible-fec-scheme-03 section 4.2, flexible mask,
// one protected SSRC), the layout pion's FlexEncoder03 and libwebrtc write:
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|R|F|P|X|  CC   |M| PT recovery |        length recovery        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                          TS recovery                          |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|   SSRCCount   |                    reserved                   |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                             SSRC_i                            |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|           SN base_i           |k|          Mask [0-14]        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|k|                   Mask [15-45] (optional)                   |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|k|                                                             |
//	+-+                   Mask [46-108] (optional)                  |
//	|                                                               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// A k bit set ends the mask. Mask bit i protects sequence number SN base + i. The recovery
// fields are the XOR, over the protected packets, of their first two bytes (P, X, CC, M, PT;
// R and F cleared), of their length minus the 12-byte fixed header, and of their timestamp;
// the repair payload is the XOR of everything after their fixed header (CSRC list,
// extensions, payload, padding), zero-padded to the longest.
const (
	flexHeaderMin  = 20 // up to the first mask
	flexMaskBits   = 109
	rtpFixedHeader = 12
	// Default sizes of FlexFECDecoder's windows.
	defaultFlexMediaWindow = 256
	defaultFlexFECWindow   = 64
	// resyncAfter packets in a row behind the window (or history) make a decoder start over:
	// the sender restarted its sequence numbers.
	resyncAfter = 16
)

// Why a FEC packet is rejected (counted as Malformed).
var (
	ErrFlexFECTruncated   = errors.New("fec: FlexFEC packet truncated")
	ErrFlexFECUnsupported = errors.New("fec: FlexFEC variant not supported")
	ErrFlexFECOtherStream = errors.New("fec: FlexFEC packet protects another SSRC")
	ErrFlexFECMask        = errors.New("fec: FlexFEC mask malformed")
)

// FlexFECStats counts what a FlexFECDecoder did.
type FlexFECStats struct {
	// MediaPackets are the protected stream's packets taken (duplicates excluded).
	MediaPackets uint64
	// FECPackets are the FEC packets taken (duplicates and malformed ones excluded).
	FECPackets uint64
	// Recovered are the media packets rebuilt.
	Recovered uint64
	// Unrecoverable are FEC packets given up while two or more of their protected packets
	// were still missing (or one was missing and another had left the window).
	Unrecoverable uint64
	// Duplicates are media or FEC packets taken twice (the second is ignored).
	Duplicates uint64
	// Malformed are FEC packets rejected: bad header, unsupported variant, another stream, or
	// a recovery that did not give a valid RTP packet.
	Malformed uint64
}

type flexCounters struct {
	media, fec, recovered, unrecoverable, duplicates, malformed atomic.Uint64
}

// FlexFECOption adjusts NewFlexFECDecoder.
type FlexFECOption func(*FlexFECDecoder)

// WithFlexFECPayloadType takes only FEC packets of payload type pt (default: any).
func WithFlexFECPayloadType(pt uint8) FlexFECOption {
	return func(d *FlexFECDecoder) { d.fecPT = int(pt & 0x7f) }
}

// WithFlexFECWindow sizes the windows: media is how many sequence numbers of the protected
// stream are kept (rounded up to a power of two, at least 128 so that a whole mask fits;
// default 256), fec how many FEC packets may wait for more media (default 64).
func WithFlexFECWindow(media, fec int) FlexFECOption {
	return func(d *FlexFECDecoder) {
		if media > 0 {
			d.window = max(128, 1<<bits.Len(uint(media-1)))
		}
		if fec > 0 {
			d.maxPending = fec
		}
	}
}

// FlexFECDecoder recovers the lost packets of one media stream from the FlexFEC-03 packets
// that protect it. Not safe for concurrent use; Stats is.
type FlexFECDecoder struct {
	mediaSSRC, fecSSRC uint32
	fecPT              int // -1: any
	window             int
	maxPending         int

	slots   []mediaSlot // indexed by sequence number modulo window
	highest uint16
	started bool
	behind  int // media packets in a row behind the window

	pending []*fecEntry // waiting for more media, oldest first
	free    []*fecEntry
	fecSeen [64]seenFEC // sequence numbers of recent FEC packets, for duplicates
	work    []*fecEntry
	out     []*rtp.Packet
	c       flexCounters
}

type mediaSlot struct {
	present bool
	seq     uint16
	data    []byte // the whole packet
}

type seenFEC struct {
	valid bool
	seq   uint16
}

// fecEntry is one FEC packet: what it protects and its recovery fields.
type fecEntry struct {
	base    uint16
	mask    [2]uint64 // bit i (LSB first): base+i is protected
	missing int
	rec     [8]byte // P/X/CC, M/PT, length, timestamp recovery
	repair  []byte
}

// NewFlexFECDecoder returns a decoder for the media stream mediaSSRC protected by the FEC
// stream fecSSRC. fecSSRC 0 takes FEC packets from any SSRC other than mediaSSRC (each must
// still name mediaSSRC in its header).
func NewFlexFECDecoder(mediaSSRC, fecSSRC uint32, opts ...FlexFECOption) *FlexFECDecoder {
	d := &FlexFECDecoder{mediaSSRC: mediaSSRC, fecSSRC: fecSSRC, fecPT: -1, window: defaultFlexMediaWindow, maxPending: defaultFlexFECWindow}
	for _, o := range opts {
		o(d)
	}
	d.slots = make([]mediaSlot, d.window)
	return d
}

// Stats returns the decoder's counters.
func (d *FlexFECDecoder) Stats() FlexFECStats {
	return FlexFECStats{
		MediaPackets: d.c.media.Load(), FECPackets: d.c.fec.Load(), Recovered: d.c.recovered.Load(),
		Unrecoverable: d.c.unrecoverable.Load(), Duplicates: d.c.duplicates.Load(), Malformed: d.c.malformed.Load(),
	}
}

// Push takes one packet of the protected stream (SSRC mediaSSRC) or of its FEC stream and
// returns the media packets it lets the decoder rebuild, in the order rebuilt (nil: none).
// Packets of other streams, and FEC packets of another payload type, are ignored. p is not
// kept: the decoder copies what it needs. The rebuilt packets are the decoder's own.
func (d *FlexFECDecoder) Push(p *rtp.Packet) []*rtp.Packet {
	switch {
	case p.SSRC == d.mediaSSRC:
		return d.pushMedia(p)
	case (d.fecSSRC == 0 || p.SSRC == d.fecSSRC) && (d.fecPT < 0 || int(p.PayloadType&0x7f) == d.fecPT):
		return d.pushFEC(p.SequenceNumber, p.Payload)
	}
	return nil
}

func (d *FlexFECDecoder) slot(seq uint16) *mediaSlot { return &d.slots[int(seq)&(d.window-1)] }

func (d *FlexFECDecoder) present(seq uint16) bool {
	s := d.slot(seq)
	return s.present && s.seq == seq && !d.tooOld(seq)
}

// tooOld: seq is behind the window, its data (if it came) is gone.
func (d *FlexFECDecoder) tooOld(seq uint16) bool {
	return d.started && int(int16(d.highest-seq)) >= d.window
}

func (d *FlexFECDecoder) pushMedia(p *rtp.Packet) []*rtp.Packet {
	seq := p.SequenceNumber
	if d.present(seq) {
		d.c.duplicates.Add(1)
		return nil
	}
	d.c.media.Add(1)
	d.advance(seq)
	if d.tooOld(seq) {
		// Late, or the stream jumped backwards (a restart under the same SSRC): after a run
		// of such packets, start over from here.
		if d.behind++; d.behind < resyncAfter {
			return nil
		}
		d.reset(seq)
	}
	d.behind = 0
	s := d.slot(seq)
	size := p.MarshalSize()
	if cap(s.data) < size {
		s.data = make([]byte, size, max(size, 1500))
	}
	s.data = s.data[:size]
	n, err := p.MarshalTo(s.data)
	if err != nil {
		return nil
	}
	s.data, s.seq, s.present = s.data[:n], seq, true
	d.out = d.out[:0]
	d.arrived(seq)
	return d.result()
}

// result hands the rebuilt packets over (nil when there are none).
func (d *FlexFECDecoder) result() []*rtp.Packet {
	if len(d.out) == 0 {
		return nil
	}
	out := make([]*rtp.Packet, len(d.out))
	copy(out, d.out)
	clear(d.out)
	d.out = d.out[:0]
	return out
}

// advance moves the window's front to seq when seq is newer, and gives up the FEC packets
// whose protected packets leave the window.
func (d *FlexFECDecoder) advance(seq uint16) {
	if !d.started {
		d.started, d.highest = true, seq
		return
	}
	diff := int(int16(seq - d.highest))
	if diff <= 0 {
		return
	}
	if diff >= d.window {
		for i := range d.slots {
			d.slots[i].present = false
		}
	}
	d.highest = seq
	kept := d.pending[:0]
	for _, f := range d.pending {
		if d.tooOld(f.base) && d.tooOldAny(f) {
			d.giveUp(f)
			continue
		}
		kept = append(kept, f)
	}
	clear(d.pending[len(kept):])
	d.pending = kept
}

// reset forgets the window and the waiting FEC packets, and restarts at seq.
func (d *FlexFECDecoder) reset(seq uint16) {
	for i := range d.slots {
		d.slots[i].present = false
	}
	for _, f := range d.pending {
		d.giveUp(f)
	}
	clear(d.pending)
	d.pending = d.pending[:0]
	d.highest, d.behind = seq, 0
}

// tooOldAny reports whether one of f's protected packets is behind the window.
func (d *FlexFECDecoder) tooOldAny(f *fecEntry) bool {
	for i := range f.protected() {
		if d.tooOld(f.base + uint16(i)) {
			return true
		}
	}
	return false
}

func (d *FlexFECDecoder) giveUp(f *fecEntry) {
	if f.missing > 0 {
		d.c.unrecoverable.Add(1)
	}
	d.release(f)
}

func (d *FlexFECDecoder) release(f *fecEntry) {
	f.repair = f.repair[:0]
	d.free = append(d.free, f)
}

// protected yields the mask's bit indexes.
func (f *fecEntry) protected() func(yield func(int) bool) {
	return func(yield func(int) bool) {
		for w := range 2 {
			m := f.mask[w]
			for m != 0 {
				b := bits.TrailingZeros64(m)
				if !yield(w*64 + b) {
					return
				}
				m &= m - 1
			}
		}
	}
}

func (f *fecEntry) protects(seq uint16) bool {
	i := int(seq - f.base)
	return i < flexMaskBits && f.mask[i/64]&(1<<(i%64)) != 0
}

// arrived updates the waiting FEC packets for a media packet now present (received or
// rebuilt) and rebuilds what becomes recoverable, repeatedly.
func (d *FlexFECDecoder) arrived(seq uint16) {
	d.work = d.work[:0]
	kept := d.pending[:0]
	for _, f := range d.pending {
		if f.protects(seq) {
			f.missing--
			switch f.missing {
			case 0:
				d.release(f)
				continue
			case 1:
				d.work = append(d.work, f)
				continue
			}
		}
		kept = append(kept, f)
	}
	clear(d.pending[len(kept):])
	d.pending = kept
	for len(d.work) > 0 {
		f := d.work[len(d.work)-1]
		d.work = d.work[:len(d.work)-1]
		d.recover(f)
	}
}

// pushFEC parses a FEC packet and rebuilds what it can at once, or keeps it.
func (d *FlexFECDecoder) pushFEC(fecSeq uint16, payload []byte) []*rtp.Packet {
	seen := &d.fecSeen[int(fecSeq)%len(d.fecSeen)]
	if seen.valid && seen.seq == fecSeq {
		d.c.duplicates.Add(1)
		return nil
	}
	f := d.alloc()
	hl, err := parseFlexFEC03(payload, d.mediaSSRC, f)
	if err != nil {
		d.c.malformed.Add(1)
		d.release(f)
		return nil
	}
	*seen = seenFEC{valid: true, seq: fecSeq}
	d.c.fec.Add(1)
	f.repair = append(f.repair[:0], payload[hl:]...)

	missing, stale := 0, false
	for i := range f.protected() {
		seq := f.base + uint16(i)
		switch {
		case d.tooOld(seq):
			stale = true
		case !d.present(seq):
			missing++
		}
	}
	f.missing = missing
	d.out = d.out[:0]
	switch {
	case missing == 0:
		d.release(f)
	case stale:
		d.giveUp(f) // a packet it needs has left the window
	case missing == 1:
		d.recover(f)
		for len(d.work) > 0 {
			g := d.work[len(d.work)-1]
			d.work = d.work[:len(d.work)-1]
			d.recover(g)
		}
	default:
		if len(d.pending) >= d.maxPending {
			d.giveUp(d.pending[0])
			copy(d.pending, d.pending[1:])
			d.pending[len(d.pending)-1] = nil
			d.pending = d.pending[:len(d.pending)-1]
		}
		d.pending = append(d.pending, f)
	}
	return d.result()
}

func (d *FlexFECDecoder) alloc() *fecEntry {
	if n := len(d.free); n > 0 {
		f := d.free[n-1]
		d.free = d.free[:n-1]
		return f
	}
	return &fecEntry{}
}

// parseFlexFEC03 reads the header into f and returns its length.
func parseFlexFEC03(b []byte, mediaSSRC uint32, f *fecEntry) (int, error) {
	if len(b) < flexHeaderMin {
		return 0, ErrFlexFECTruncated
	}
	if b[0]&0x80 != 0 || b[0]&0x40 != 0 { // R: retransmission; F: fixed (M x N) mask
		return 0, ErrFlexFECUnsupported
	}
	if b[8] != 1 {
		return 0, ErrFlexFECUnsupported // 0 is invalid, several SSRCs are not supported
	}
	if binary.BigEndian.Uint32(b[12:16]) != mediaSSRC {
		return 0, ErrFlexFECOtherStream
	}
	copy(f.rec[:], b[:8])
	f.base = binary.BigEndian.Uint16(b[16:18])
	f.mask = [2]uint64{}
	set := func(i int) { f.mask[i/64] |= 1 << (i % 64) }

	m0 := binary.BigEndian.Uint16(b[18:20])
	for i := range 15 {
		if m0&(1<<(14-i)) != 0 {
			set(i)
		}
	}
	hl := flexHeaderMin
	if m0&0x8000 == 0 {
		if len(b) < hl+4 {
			return 0, ErrFlexFECTruncated
		}
		m1 := binary.BigEndian.Uint32(b[hl : hl+4])
		hl += 4
		for i := range 31 {
			if m1&(1<<(30-i)) != 0 {
				set(15 + i)
			}
		}
		if m1&0x80000000 == 0 {
			if len(b) < hl+8 {
				return 0, ErrFlexFECTruncated
			}
			m2 := binary.BigEndian.Uint64(b[hl : hl+8])
			hl += 8
			if m2&(1<<63) == 0 {
				return 0, ErrFlexFECMask // the third mask must end it
			}
			for i := range 63 {
				if m2&(1<<(62-i)) != 0 {
					set(46 + i)
				}
			}
		}
	}
	if f.mask == [2]uint64{} {
		return 0, ErrFlexFECMask
	}
	return hl, nil
}

// recover rebuilds the one missing packet of f (all the others present), adds it to the
// window and to d.out, and queues the FEC packets it completes on d.work.
func (d *FlexFECDecoder) recover(f *fecEntry) {
	defer d.release(f)
	var rec [8]byte
	rec = f.rec
	lost, found := uint16(0), false
	for i := range f.protected() {
		seq := f.base + uint16(i)
		if !d.present(seq) {
			if found { // two missing: a window slid under it
				d.c.unrecoverable.Add(1)
				return
			}
			lost, found = seq, true
			continue
		}
		pkt := d.slot(seq).data
		rec[0] ^= pkt[0]
		rec[1] ^= pkt[1]
		l := len(pkt) - rtpFixedHeader
		rec[2] ^= byte(l >> 8)
		rec[3] ^= byte(l)
		rec[4] ^= pkt[4]
		rec[5] ^= pkt[5]
		rec[6] ^= pkt[6]
		rec[7] ^= pkt[7]
	}
	if !found {
		return
	}
	length := int(binary.BigEndian.Uint16(rec[2:4]))
	if length > len(f.repair) {
		d.c.malformed.Add(1)
		return
	}
	buf := make([]byte, rtpFixedHeader+length)
	buf[0] = 0x80 | rec[0]&0x3f
	buf[1] = rec[1]
	binary.BigEndian.PutUint16(buf[2:4], lost)
	copy(buf[4:8], rec[4:8])
	binary.BigEndian.PutUint32(buf[8:12], d.mediaSSRC)
	body := buf[rtpFixedHeader:]
	copy(body, f.repair[:length])
	for i := range f.protected() {
		seq := f.base + uint16(i)
		if seq == lost {
			continue
		}
		xorInto(body, d.slot(seq).data[rtpFixedHeader:])
	}
	p := &rtp.Packet{}
	if err := p.Unmarshal(buf); err != nil {
		d.c.malformed.Add(1)
		return
	}
	d.c.recovered.Add(1)
	d.advance(lost)
	if !d.tooOld(lost) {
		s := d.slot(lost)
		s.data = append(s.data[:0], buf...)
		s.seq, s.present = lost, true
	}
	d.out = append(d.out, p)
	// The packets waiting on lost: queue those it completes.
	kept := d.pending[:0]
	for _, g := range d.pending {
		if g != f && g.protects(lost) {
			g.missing--
			switch g.missing {
			case 0:
				d.release(g)
				continue
			case 1:
				d.work = append(d.work, g)
				continue
			}
		}
		kept = append(kept, g)
	}
	clear(d.pending[len(kept):])
	d.pending = kept
}

// xorInto XORs src into dst over the shorter of the two.
func xorInto(dst, src []byte) {
	n := min(len(dst), len(src))
	dst, src = dst[:n], src[:n]
	for len(dst) >= 8 {
		binary.NativeEndian.PutUint64(dst, binary.NativeEndian.Uint64(dst)^binary.NativeEndian.Uint64(src))
		dst, src = dst[8:], src[8:]
	}
	for i := range dst {
		dst[i] ^= src[i]
	}
}
