package netem

import (
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// udpIPHeader is what a datagram adds on the wire (IPv4 20 + UDP 8): capacity counts it.
const udpIPHeader = 28

// Direction is one direction of a host's access link: Up carries what the host sends, Down what
// it receives. Its pipeline runs, per datagram and in this order: outage (and a schedule's
// down), loss, duplication, capacity (a drop-tail queue drained at Rate on the direction's own
// timer), then delay and jitter. One scheduler goroutine per direction, started by
// Network.Start, moves packets out of the queue and the delay line; the cheap stages run on the
// sender's goroutine.
//
// All methods are safe for concurrent use, while traffic flows.
type Direction struct {
	name string
	nw   *Network

	wake     chan struct{} // pokes the scheduler when an earlier event appears
	done     chan struct{} // closed by stop
	inflight atomic.Bool   // the scheduler is forwarding a batch outside the lock

	mu      sync.Mutex
	cfg     LinkConfig // as Set
	running bool       // between Start and Close
	stopped bool
	start   time.Time // the network's start: schedules and outages count from it
	armed   time.Time // the instant the scheduler's timer is set for (zero: none)

	// The models in force: cfg's, changed by the schedule's phases up to now.
	loss     LossModel
	delay    DelayModel
	capacity CapacityModel
	down     bool
	phase    int // index of the next phase of cfg.Schedule to apply

	seed                       uint64
	lossRNG, dupRNG, jitterRNG *rand.Rand
	bad                        bool // Gilbert-Elliott state of the datagram loss model
	stream                     streamRandom

	queue      packetFIFO // the capacity stage: the head is on the wire
	queued     int        // wire bytes in queue, the head included
	linkFree   time.Time  // when the wire finished its last packet
	departures packetHeap // the delay stage, by departure time
	lastDepart time.Time  // departure of the last packet that holds back the ones behind it
	seq        uint64

	stats      DirectionStats
	queueDelay histogram
	oneWay     histogram
}

// streamRandom is the randomness stream connections draw from: separate from the datagrams',
// so signalling traffic does not shift the datagrams' loss pattern.
type streamRandom struct {
	rng *rand.Rand
	bad bool
}

func newDirection(n *Network, name string) *Direction {
	d := &Direction{name: name, nw: n, wake: make(chan struct{}, 1), done: make(chan struct{})}
	d.reseedLocked()
	return d
}

// Name is "host/up" or "host/down".
func (d *Direction) Name() string { return d.name }

// Set validates cfg and makes it the direction's model, at once: the next packet sees it. The
// queue keeps what it holds (a capacity change only changes how fast it drains; a smaller queue
// limit drops new arrivals until the queue fits). The schedule's phases count from the network's
// start; on a running network cfg is in force from now on: the phases already past are not
// replayed over it, the later ones apply when they come. A changed seed restarts the random
// streams; an unchanged one continues them.
func (d *Direction) Set(cfg LinkConfig) error {
	if err := ValidateLinkConfig(cfg); err != nil {
		return fmt.Errorf("netem: %s: %w", d.name, err)
	}
	cfg = cloneConfig(cfg)
	d.mu.Lock()
	now := time.Now()
	if d.running {
		d.advanceLocked(now) // the old models up to now
	}
	reseed := cfg.Seed != d.cfg.Seed
	d.cfg = cfg
	if reseed {
		d.reseedLocked()
	}
	d.resetModelsLocked(now)
	if d.running {
		// A live change is in force now: the schedule's phases already past are not replayed
		// over it (they would undo it), the later ones apply when they come.
		for d.phase < len(cfg.Schedule) && !d.start.Add(cfg.Schedule[d.phase].At).After(now) {
			d.phase++
		}
	}
	wake := d.needWakeLocked()
	d.mu.Unlock()
	if wake {
		d.poke()
	}
	d.nw.log.Debug("netem: link set", "direction", d.name, "config", cfg)
	return nil
}

// Config returns the configuration last Set (the schedule's phases are not folded in).
func (d *Direction) Config() LinkConfig {
	d.mu.Lock()
	defer d.mu.Unlock()
	return cloneConfig(d.cfg)
}

// DirectionStats counts what a direction did to datagrams. Bytes are UDP payload bytes (the
// capacity model's Rate also counts 28 header bytes per datagram). A duplicate counts once in
// Duplicated and then like any packet (delivered or dropped). Stream connections are not counted.
type DirectionStats struct {
	OfferedPackets, OfferedBytes, DeliveredPackets, DeliveredBytes int64
	DroppedLoss, DroppedOutage, DroppedQueue, Duplicated           int64
	// QueueDelay is the time each packet spent in the capacity stage (waiting plus its own
	// transmission at Rate; 0 without a capacity limit).
	QueueDelay Distribution
	// OneWayDelay is each delivered packet's total time in this direction: queue, delay, jitter,
	// and waiting behind an earlier packet's jitter.
	OneWayDelay Distribution
}

// Stats returns the direction's counters since the network was created.
func (d *Direction) Stats() DirectionStats {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.stats
	s.QueueDelay = d.queueDelay.distribution()
	s.OneWayDelay = d.oneWay.distribution()
	return s
}

func cloneConfig(c LinkConfig) LinkConfig {
	c.Outages = slices.Clone(c.Outages)
	c.Schedule = slices.Clone(c.Schedule)
	return c
}

// reseedLocked starts the random streams from the direction's seed: LinkConfig.Seed, or one
// derived from the network's seed and the direction's name. Each model has its own stream, so a
// jitter change does not move the loss pattern.
func (d *Direction) reseedLocked() {
	d.seed = directionSeed(d.nw.seed, d.name)
	if d.cfg.Seed != 0 {
		d.seed = splitmix64(uint64(d.cfg.Seed))
	}
	stream := func(tag uint64) *rand.Rand { return rand.New(rand.NewPCG(d.seed, splitmix64(d.seed^tag))) }
	d.lossRNG = stream(1)
	d.dupRNG = stream(2)
	d.jitterRNG = stream(3)
	d.stream = streamRandom{rng: stream(4)}
	d.bad = false
}

// resetModelsLocked puts cfg's models in force and rewinds the schedule.
func (d *Direction) resetModelsLocked(now time.Time) {
	d.loss = d.cfg.Loss
	d.delay = d.cfg.Delay
	d.setCapacityLocked(d.cfg.Capacity, now)
	d.down = false
	d.phase = 0
}

// run starts the scheduler; Network.Start calls it.
func (d *Direction) run(start time.Time, wg *sync.WaitGroup) {
	d.mu.Lock()
	d.start = start
	d.running = true
	d.resetModelsLocked(start)
	d.advanceLocked(start)
	d.mu.Unlock()
	wg.Go(d.loop)
}

// stop ends the scheduler and drops what is in flight; Network.Close calls it.
func (d *Direction) stop() {
	d.mu.Lock()
	if d.stopped {
		d.mu.Unlock()
		return
	}
	d.stopped = true
	d.running = false
	for d.queue.len() > 0 {
		putPacket(d.queue.pop())
	}
	d.queued = 0
	for d.departures.len() > 0 {
		putPacket(d.departures.pop())
	}
	d.mu.Unlock()
	close(d.done)
}

func (d *Direction) poke() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// loop is the direction's scheduler: it sleeps until the next event (a packet leaving the wire,
// a packet's departure, a phase), moves everything that is due, and forwards what departs.
func (d *Direction) loop() {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var out []*packet
	for {
		d.mu.Lock()
		now := time.Now()
		d.advanceLocked(now)
		for d.departures.len() > 0 && !d.departures.peek().depart.After(now) {
			p := d.departures.pop()
			d.deliveredLocked(p)
			out = append(out, p)
		}
		next := d.nextEventLocked()
		d.armed = next
		if len(out) > 0 {
			d.inflight.Store(true)
		}
		d.mu.Unlock()

		for i, p := range out {
			d.forward(p)
			out[i] = nil
		}
		out = out[:0]
		d.inflight.Store(false)
		if next.IsZero() {
			timer.Stop()
		} else {
			timer.Reset(time.Until(next))
		}
		select {
		case <-timer.C:
		case <-d.wake:
		case <-d.done:
			timer.Stop()
			return
		}
	}
}

// offer runs a packet through the direction's cheap stages at instant at (its arrival) and
// queues it for the rest. It owns p from then on.
func (d *Direction) offer(p *packet, at time.Time) {
	d.mu.Lock()
	if !d.running {
		d.mu.Unlock()
		putPacket(p)
		return
	}
	d.advanceLocked(at)
	d.stats.OfferedPackets++
	d.stats.OfferedBytes += int64(len(p.data))
	if d.downLocked(at) {
		d.stats.DroppedOutage++
		d.mu.Unlock()
		putPacket(p)
		return
	}
	if lose(d.loss, d.lossRNG, &d.bad) {
		d.stats.DroppedLoss++
		d.mu.Unlock()
		putPacket(p)
		return
	}
	var dup *packet
	if dm := d.cfg.Duplicate; dm.Rate > 0 && d.dupRNG.Float64() < dm.Rate {
		d.stats.Duplicated++
		dup = p.clone()
		dup.extra = dm.Delay
	}
	now1 := d.admitLocked(p, at)
	var now2 *packet
	if dup != nil {
		now2 = d.admitLocked(dup, at)
	}
	wake := d.needWakeLocked()
	d.mu.Unlock()
	if wake {
		d.poke()
	}
	if now1 != nil {
		d.forward(now1)
	}
	if now2 != nil {
		d.forward(now2)
	}
}

// admitLocked puts p in the capacity queue, or, without a capacity limit, straight into the
// delay line. It returns p when p departs at once (no delay, nothing ahead of it): the caller
// forwards it.
func (d *Direction) admitLocked(p *packet, at time.Time) *packet {
	p.enq = at
	if d.capacity.Rate > 0 {
		if d.queue.len() > 0 && d.queued+p.wire > d.queueLimitLocked() {
			d.stats.DroppedQueue++
			putPacket(p)
			return nil
		}
		d.queue.push(p)
		d.queued += p.wire
		if d.queue.len() == 1 {
			d.startHeadLocked(at)
		}
		return nil
	}
	d.queueDelay.add(0)
	p.depart = d.departLocked(p, at)
	if !p.depart.After(at) && d.departures.len() == 0 && !d.inflight.Load() {
		d.deliveredLocked(p)
		return p
	}
	d.pushDepartureLocked(p)
	return nil
}

// queueLimitLocked is the queue's size in wire bytes: QueueBytes, QueueDelay at the current
// rate, the smaller of both when both are set, or 300 ms at the rate.
func (d *Direction) queueLimitLocked() int {
	c := d.capacity
	byDelay := func(t time.Duration) int { return int(float64(c.Rate) * t.Seconds() / 8) }
	switch {
	case c.QueueBytes > 0 && c.QueueDelay > 0:
		return min(c.QueueBytes, byDelay(c.QueueDelay))
	case c.QueueBytes > 0:
		return c.QueueBytes
	case c.QueueDelay > 0:
		return byDelay(c.QueueDelay)
	default:
		return byDelay(defaultQueueDelay)
	}
}

// defaultQueueDelay sizes a capacity queue given neither QueueBytes nor QueueDelay.
const defaultQueueDelay = 300 * time.Millisecond

// txTime is how long wire bytes take at the current rate; without a limit, no time (a schedule
// lifting the limit flushes the queue through here).
func (d *Direction) txTime(wire int) time.Duration {
	if d.capacity.Rate <= 0 {
		return 0
	}
	return time.Duration(int64(wire) * 8 * int64(time.Second) / d.capacity.Rate)
}

// startHeadLocked puts the queue's head on the wire: it starts when the wire is free and it has
// arrived, whichever is later.
func (d *Direction) startHeadLocked(t time.Time) {
	h := d.queue.peek()
	start := h.enq
	if d.linkFree.After(start) {
		start = d.linkFree
	}
	if t.After(start) {
		start = t
	}
	h.txEnd = start.Add(d.txTime(h.wire))
}

// advanceLocked runs the direction's events up to now in time order: phases of the schedule and
// packets leaving the wire (into the delay line). Departures are the scheduler's to pop.
func (d *Direction) advanceLocked(now time.Time) {
	if !d.running {
		return
	}
	for {
		var tCap, tPh time.Time
		hasCap := d.queue.len() > 0
		if hasCap {
			tCap = d.queue.peek().txEnd
		}
		hasPh := d.phase < len(d.cfg.Schedule)
		if hasPh {
			tPh = d.start.Add(d.cfg.Schedule[d.phase].At)
		}
		switch {
		case hasPh && !tPh.After(now) && (!hasCap || !tPh.After(tCap)):
			d.applyPhaseLocked(d.cfg.Schedule[d.phase], tPh)
			d.phase++
		case hasCap && !tCap.After(now):
			d.completeHeadLocked(tCap)
		default:
			return
		}
	}
}

func (d *Direction) applyPhaseLocked(ph Phase, at time.Time) {
	if ph.Loss != nil {
		d.loss = *ph.Loss
	}
	if ph.Delay != nil {
		d.delay = *ph.Delay
	}
	if ph.Capacity != nil {
		d.setCapacityLocked(*ph.Capacity, at)
	}
	if ph.Down != nil {
		d.down = *ph.Down
	}
}

// setCapacityLocked changes the capacity at instant at, keeping the queue: the rest of the
// packet on the wire goes at the new rate; with no limit any more, the queue leaves at once.
func (d *Direction) setCapacityLocked(c CapacityModel, at time.Time) {
	old := d.capacity.Rate
	d.capacity = c
	if d.queue.len() == 0 || old == c.Rate {
		return
	}
	if c.Rate == 0 {
		for d.queue.len() > 0 {
			d.queue.peek().txEnd = at
			d.completeHeadLocked(at)
		}
		return
	}
	h := d.queue.peek()
	if rem := h.txEnd.Sub(at); rem > 0 {
		h.txEnd = at.Add(time.Duration(float64(rem) * float64(old) / float64(c.Rate)))
	}
}

// completeHeadLocked moves the head, whose last bit left at t, into the delay line and puts the
// next packet on the wire.
func (d *Direction) completeHeadLocked(t time.Time) {
	p := d.queue.pop()
	d.queued -= p.wire
	d.linkFree = t
	d.queueDelay.add(t.Sub(p.enq))
	if d.queue.len() > 0 {
		d.startHeadLocked(t)
	}
	p.depart = d.departLocked(p, t)
	d.pushDepartureLocked(p)
}

// departLocked draws p's departure from the delay line it enters at t. Without Reorder a packet
// never leaves before the one ahead of it (a late packet holds back the ones behind it); a
// duplicate's copy comes Duplicate.Delay after and holds back nothing.
func (d *Direction) departLocked(p *packet, t time.Time) time.Time {
	dep := t.Add(d.delay.Base + drawJitter(d.delay, d.jitterRNG))
	if p.extra > 0 {
		if dep.Before(d.lastDepart) {
			dep = d.lastDepart
		}
		dep = dep.Add(p.extra)
		p.extra = 0 // the next direction treats the copy as any packet
		return dep
	}
	if !d.delay.Reorder {
		if dep.Before(d.lastDepart) {
			dep = d.lastDepart
		}
		d.lastDepart = dep
	}
	return dep
}

func (d *Direction) pushDepartureLocked(p *packet) {
	p.seq = d.seq
	d.seq++
	d.departures.push(p)
}

func (d *Direction) deliveredLocked(p *packet) {
	d.stats.DeliveredPackets++
	d.stats.DeliveredBytes += int64(len(p.data))
	d.oneWay.add(p.depart.Sub(p.enq))
}

// nextEventLocked is the earliest instant the scheduler has work (zero: none).
func (d *Direction) nextEventLocked() time.Time {
	var next time.Time
	consider := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	if d.queue.len() > 0 {
		consider(d.queue.peek().txEnd)
	}
	if d.departures.len() > 0 {
		consider(d.departures.peek().depart)
	}
	if d.running && d.phase < len(d.cfg.Schedule) {
		consider(d.start.Add(d.cfg.Schedule[d.phase].At))
	}
	return next
}

// needWakeLocked reports whether the scheduler's timer is set later than the next event.
func (d *Direction) needWakeLocked() bool {
	if !d.running {
		return false
	}
	next := d.nextEventLocked()
	return !next.IsZero() && (d.armed.IsZero() || next.Before(d.armed))
}

// downLocked reports whether the direction is down at t: an outage or a phase's Down.
func (d *Direction) downLocked(t time.Time) bool {
	if d.down {
		return true
	}
	return d.inOutageLocked(t)
}

func (d *Direction) inOutageLocked(t time.Time) bool {
	if d.start.IsZero() {
		return false
	}
	since := t.Sub(d.start)
	for _, o := range d.cfg.Outages {
		if since >= o.Start && since < o.Start+o.Duration {
			return true
		}
	}
	return false
}

// forward hands a departed packet to the next direction of its path, or to vnet at the end.
func (d *Direction) forward(p *packet) {
	p.hop++
	if int(p.hop) < int(p.hops) {
		p.path[p.hop].offer(p, p.depart)
		return
	}
	p.deliver()
}

// packet is one datagram in flight through the directions of its path.
type packet struct {
	data  []byte
	wire  int // len(data) + IP and UDP headers
	conn  *udpConn
	addr  net.UDPAddr // destination
	path  [2]*Direction
	hops  uint8
	hop   uint8
	extra time.Duration // a duplicate's extra delay

	enq    time.Time // entered the current direction
	txEnd  time.Time // its last bit leaves the wire
	depart time.Time // leaves the current direction
	seq    uint64    // ties in the departure heap keep arrival order
}

var packetPool = sync.Pool{New: func() any { return &packet{data: make([]byte, 0, 1500)} }}

func getPacket(b []byte) *packet {
	p := packetPool.Get().(*packet)
	p.data = append(p.data[:0], b...)
	p.wire = len(b) + udpIPHeader
	return p
}

func putPacket(p *packet) {
	if cap(p.data) > 1<<16 {
		return
	}
	*p = packet{data: p.data[:0]}
	packetPool.Put(p)
}

func (p *packet) clone() *packet {
	c := getPacket(p.data)
	c.conn, c.addr, c.path, c.hops, c.hop = p.conn, p.addr, p.path, p.hops, p.hop
	return c
}

// deliver writes the packet to vnet, which routes it to the destination's socket.
func (p *packet) deliver() {
	_, _ = p.conn.inner.WriteTo(p.data, &p.addr) // vnet copies it; a closed network drops it
	putPacket(p)
}

// packetFIFO is a queue of packets (the capacity stage).
type packetFIFO struct {
	buf  []*packet
	head int
}

func (q *packetFIFO) len() int       { return len(q.buf) - q.head }
func (q *packetFIFO) peek() *packet  { return q.buf[q.head] }
func (q *packetFIFO) push(p *packet) { q.buf = append(q.buf, p) }
func (q *packetFIFO) pop() *packet {
	p := q.buf[q.head]
	q.buf[q.head] = nil
	q.head++
	if q.head == len(q.buf) {
		q.buf, q.head = q.buf[:0], 0
	} else if q.head >= 256 && q.head*2 >= len(q.buf) {
		n := copy(q.buf, q.buf[q.head:])
		clear(q.buf[n:])
		q.buf, q.head = q.buf[:n], 0
	}
	return p
}

// packetHeap is a min-heap of packets by departure, then arrival order. Without reordering,
// departures are non-decreasing, so a push costs one comparison.
type packetHeap []*packet

func (h packetHeap) len() int      { return len(h) }
func (h packetHeap) peek() *packet { return h[0] }
func (h packetHeap) less(i, j int) bool {
	if c := h[i].depart.Compare(h[j].depart); c != 0 {
		return c < 0
	}
	return h[i].seq < h[j].seq
}

func (h *packetHeap) push(p *packet) {
	*h = append(*h, p)
	a := *h
	for i := len(a) - 1; i > 0; {
		parent := (i - 1) / 2
		if !a.less(i, parent) {
			break
		}
		a[i], a[parent] = a[parent], a[i]
		i = parent
	}
}

func (h *packetHeap) pop() *packet {
	a := *h
	p := a[0]
	last := len(a) - 1
	a[0] = a[last]
	a[last] = nil
	a = a[:last]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(a) && a.less(l, m) {
			m = l
		}
		if r < len(a) && a.less(r, m) {
			m = r
		}
		if m == i {
			break
		}
		a[i], a[m] = a[m], a[i]
		i = m
	}
	*h = a
	return p
}
