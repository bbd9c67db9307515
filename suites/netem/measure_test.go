package netem_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/siprtc/siprtc/lab"
	"github.com/siprtc/siprtc/lab/netem"
)

// flow is constant-rate UDP traffic from one host to another: count datagrams of size payload
// bytes, one every interval, starting first after the network starts.
type flow struct {
	from, to string
	size     int
	interval time.Duration
	count    int
	first    time.Duration
}

// arrival is one datagram received: its sequence number and when it was sent and received,
// counted from the network's start.
type arrival struct {
	seq        int
	sent, recv time.Duration
}

func (a arrival) delay() time.Duration { return a.recv - a.sent }

// flowResult is what one flow measured, with the counters of the two directions it crossed.
type flowResult struct {
	flow
	arrivals []arrival // in arrival order
	up, down netem.DirectionStats
}

// lost returns the sequence numbers that never arrived, in order.
func (r flowResult) lost() []int {
	got := make([]bool, r.count)
	for _, a := range r.arrivals {
		if a.seq < r.count {
			got[a.seq] = true
		}
	}
	var lost []int
	for i, ok := range got {
		if !ok {
			lost = append(lost, i)
		}
	}
	return lost
}

// delays returns the one-way delays of the arrivals, sorted.
func (r flowResult) delays() []time.Duration {
	d := make([]time.Duration, len(r.arrivals))
	for i, a := range r.arrivals {
		d[i] = a.delay()
	}
	slices.Sort(d)
	return d
}

const headerLen = 12 // sequence number (4 bytes) and send time (8 bytes)

var errNoHost = errors.New("no such host")

// measure builds a network, starts it, runs the flows concurrently, waits drain after the last
// send for what is in flight, and closes the network; all of it in virtual time. build must not
// start the network.
func measure(build func() (*netem.Network, error), drain time.Duration, flows ...flow) ([]flowResult, error) {
	return lab.Virtual(suiteT, func() ([]flowResult, error) {
		n, err := build()
		if err != nil {
			return nil, err
		}
		defer n.Close()
		results := make([]flowResult, len(flows))
		type socket struct {
			src, dst       net.PacketConn
			dstAddr        net.Addr
			fromHost, host *netem.Host
		}
		sockets := make([]socket, len(flows))
		for i, f := range flows {
			results[i].flow = f
			from, ok1 := n.Host(f.from)
			to, ok2 := n.Host(f.to)
			if !ok1 || !ok2 {
				return nil, fmt.Errorf("flow %s -> %s: %w", f.from, f.to, errNoHost)
			}
			if f.size < headerLen {
				return nil, fmt.Errorf("flow %s -> %s: payload %d < %d bytes", f.from, f.to, f.size, headerLen)
			}
			port := 20000 + i
			src, err := from.Net.ListenPacket("udp4", fmt.Sprintf("%s:%d", from.IP, port))
			if err != nil {
				return nil, err
			}
			dst, err := to.Net.ListenPacket("udp4", fmt.Sprintf("%s:%d", to.IP, port))
			if err != nil {
				return nil, err
			}
			sockets[i] = socket{src: src, dst: dst, dstAddr: dst.LocalAddr(), fromHost: from, host: to}
		}
		if err := n.Start(); err != nil {
			return nil, err
		}
		start := n.StartTime()

		var readers, senders sync.WaitGroup
		for i := range flows {
			s, r := sockets[i], &results[i]
			readers.Go(func() {
				buf := make([]byte, 65536)
				for {
					k, _, err := s.dst.ReadFrom(buf)
					if err != nil {
						return
					}
					if k < headerLen {
						continue
					}
					r.arrivals = append(r.arrivals, arrival{
						seq:  int(binary.BigEndian.Uint32(buf)),
						sent: time.Duration(binary.BigEndian.Uint64(buf[4:])),
						recv: time.Since(start),
					})
				}
			})
		}
		sendErrs := make([]error, len(flows))
		for i, f := range flows {
			s := sockets[i]
			senders.Go(func() {
				buf := make([]byte, f.size)
				for k := range f.count {
					time.Sleep(time.Until(start.Add(f.first + time.Duration(k)*f.interval)))
					binary.BigEndian.PutUint32(buf, uint32(k))
					binary.BigEndian.PutUint64(buf[4:], uint64(time.Since(start)))
					if _, err := s.src.WriteTo(buf, s.dstAddr); err != nil {
						sendErrs[i] = fmt.Errorf("flow %s -> %s: send %d: %w", f.from, f.to, k, err)
						return
					}
				}
			})
		}
		senders.Wait()
		time.Sleep(drain)
		for i := range flows {
			results[i].up = sockets[i].fromHost.Up.Stats()
			results[i].down = sockets[i].host.Down.Stats()
		}
		closeErr := n.Close() // closes the sockets: the readers return
		readers.Wait()
		return results, errors.Join(errors.Join(sendErrs...), closeErr)
	})
}

// pair builds a network of two hosts, a and b, with cfg on a's uplink.
func pair(seed int64, cfg netem.LinkConfig) func() (*netem.Network, error) {
	return func() (*netem.Network, error) {
		n, err := netem.New("", netem.WithSeed(seed))
		if err != nil {
			return nil, err
		}
		a, err := n.AddHost("a", "")
		if err != nil {
			return nil, err
		}
		if _, err := n.AddHost("b", ""); err != nil {
			return nil, err
		}
		return n, a.Up.Set(cfg)
	}
}

// z99 is the two-sided 99% quantile of the standard normal distribution.
const z99 = 2.5758

// bursts returns the lengths of the runs of consecutive lost sequence numbers.
func bursts(lost []int) []int {
	var runs []int
	for i := 0; i < len(lost); {
		j := i + 1
		for j < len(lost) && lost[j] == lost[j-1]+1 {
			j++
		}
		runs = append(runs, j-i)
		i = j
	}
	return runs
}

func mean(xs []int) float64 {
	s := 0
	for _, x := range xs {
		s += x
	}
	return float64(s) / float64(len(xs))
}

// quantile is the nearest-rank p-quantile of sorted values.
func quantile(sorted []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
