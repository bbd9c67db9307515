package netem

import "time"

// The link models. A LinkConfig describes one direction of one link; every model in it is a
// plain value, so a scenario file, a test or a tuner builds them the same way, and a link can be
// given a new one while traffic flows (Direction.Set).

// LinkConfig is the whole model of one direction of a link, applied in this order to every
// datagram: outage, loss, duplication, capacity (queue), delay and jitter.
type LinkConfig struct {
	Loss      LossModel
	Outages   []Outage
	Delay     DelayModel
	Capacity  CapacityModel
	Duplicate DuplicateModel
	// Schedule changes the models over time (RFC 8867 phases); phase times count from the moment
	// the network starts.
	Schedule []Phase
	// Seed makes the direction's random decisions (loss, duplication, jitter) a function of the
	// seed and of the order of packets on this direction. 0 derives a seed from the network's
	// seed and the direction's name.
	Seed int64
}

// LossKind names a loss model.
type LossKind string

// The loss models.
const (
	LossNone      LossKind = ""
	LossBernoulli LossKind = "bernoulli"
	// LossGilbertElliott is the two-state Markov model: Good -> Bad with probability P per
	// packet, Bad -> Good with probability R; a packet is lost with LossGood in Good and LossBad
	// in Bad (Gilbert's model: LossGood 0, LossBad 1). Mean burst length is 1/R when LossBad is
	// 1; stationary loss is (P*LossBad + R*LossGood)/(P+R).
	LossGilbertElliott LossKind = "gilbert-elliott"
)

// LossModel is random packet loss.
type LossModel struct {
	Kind LossKind
	// Rate is the Bernoulli loss probability (0..1).
	Rate float64
	// P, R, LossGood and LossBad parameterize Gilbert-Elliott (all 0..1).
	P, R, LossGood, LossBad float64
}

// Outage takes the direction down (every packet dropped) for Duration from Start.
type Outage struct {
	Start, Duration time.Duration
}

// JitterKind names a jitter distribution.
type JitterKind string

// The jitter distributions: the extra one-way delay added to Base for each packet.
const (
	JitterNone JitterKind = ""
	// JitterUniform draws from [0, 2*Mean), so its mean is Mean.
	JitterUniform JitterKind = "uniform"
	// JitterNormal draws from a normal distribution of mean Mean and deviation Std; negative
	// draws count as 0 (clipped, so the mean rises a little when Std is close to Mean).
	JitterNormal JitterKind = "normal"
	// JitterExponential draws from an exponential distribution of mean Mean.
	JitterExponential JitterKind = "exponential"
	// JitterPareto draws from a Pareto type II (Lomax, starting at 0) distribution of mean Mean
	// and shape Shape (>1): rare long delays, as on Wi-Fi and cellular links.
	JitterPareto JitterKind = "pareto"
)

// DelayModel is one-way delay: Base plus a per-packet jitter draw. Packets leave in the order
// they came unless Reorder is set (jitter without reordering is the common real case: a late
// packet holds back the ones behind it).
type DelayModel struct {
	Base   time.Duration
	Jitter JitterKind
	Mean   time.Duration // mean of the jitter draw
	Std    time.Duration // normal distribution's standard deviation
	Shape  float64       // Pareto shape (default 2.5)
	// Reorder lets a packet with a smaller draw overtake one with a larger draw.
	Reorder bool
}

// CapacityModel is a bottleneck: packets leave at Rate bits per second through a drop-tail
// queue; a packet that does not fit is dropped. The queue drains on its own timer (packets leave
// at line rate, not when the next one arrives). Rate counts IP+UDP headers too (28 bytes per
// datagram), as a real link does.
type CapacityModel struct {
	// Rate in bits per second; 0 means unlimited (no queue).
	Rate int64
	// QueueBytes limits the queue in bytes; QueueDelay limits it in time at Rate (the byte limit
	// is Rate*QueueDelay/8). With both 0 the queue holds 300 ms at Rate.
	QueueBytes int
	QueueDelay time.Duration
}

// DuplicateModel duplicates packets with probability Rate; the copy follows Delay after the
// original.
type DuplicateModel struct {
	Rate  float64
	Delay time.Duration
}

// Phase changes some models of a direction at At (time since the network started). Nil fields
// keep the current model.
type Phase struct {
	At       time.Duration
	Loss     *LossModel
	Delay    *DelayModel
	Capacity *CapacityModel
	// Down takes the direction down (true) or up (false) from At; nil leaves it.
	Down *bool
}
