package metrics

import "math"

// DefaultR is the ITU-T G.107 rating with every parameter at its default value (Ro − Is and
// the echo terms of the default connection, no delay, no loss): 93.2. [EModel] starts from it.
const DefaultR = 93.2

// Codec carries a codec's equipment impairment Ie and packet-loss robustness Bpl, the
// E-model's codec parameters (ITU-T G.113 Appendix I tabulates them).
type Codec struct {
	Name string  `json:"name"`
	Ie   float64 `json:"ie"`
	Bpl  float64 `json:"bpl"`
}

// Codec values. G.711 and G.729A are from ITU-T G.113 Appendix I (Ie, and Bpl measured with
// random loss). Opus is not in G.113: CodecOpus is a lab assumption, not a standard value.
// At the rates WebRTC uses (>= 24 kbit/s, wideband or better) Opus is at least transparent on
// the narrowband E-model's scale, hence Ie = 0, and its packet-loss concealment is at least as
// good as G.711's Appendix I PLC, hence G.711+PLC's Bpl = 25.1 (conservative: Opus in-band
// FEC, when used, shows up as repair before the loss reaches the model). Pass a Codec of your
// own when a calibrated value is needed.
var (
	CodecG711    = Codec{Name: "G.711", Ie: 0, Bpl: 4.3}          // no packet-loss concealment
	CodecG711PLC = Codec{Name: "G.711+PLC", Ie: 0, Bpl: 25.1}     // G.711 Appendix I PLC
	CodecG729A   = Codec{Name: "G.729A+VAD", Ie: 11, Bpl: 19.0}   // 8 kbit/s CS-ACELP
	CodecOpus    = Codec{Name: "Opus(assumed)", Ie: 0, Bpl: 25.1} // lab assumption, see above
)

// VoiceInput is what [EModel] rates.
type VoiceInput struct {
	// DelayMs is the one-way mouth-to-ear delay Ta, ms: network delay plus packetisation,
	// codec and the playout buffer. When it leaves the playout buffer out, set JitterFactor.
	DelayMs float64 `json:"delay_ms"`
	// JitterMs is the interarrival jitter, ms (e.g. StreamStats.Jitter).
	JitterMs float64 `json:"jitter_ms"`
	// JitterFactor adds JitterFactor*JitterMs to DelayMs as the playout buffer's delay: 0 when
	// DelayMs already includes it (the default), 2 is a customary adaptive-buffer estimate.
	JitterFactor float64 `json:"jitter_factor"`
	// LossPercent is Ppl, the packet loss in percent after repair and including packets
	// discarded as late (StreamStats.EffectiveLossRate*100).
	LossPercent float64 `json:"loss_percent"`
	// BurstR is the burst ratio (1 = random loss; StreamStats.Gilbert.BurstR). Zero means 1.
	BurstR float64 `json:"burst_r"`
	// Codec gives Ie and Bpl.
	Codec Codec `json:"codec"`
	// A is the advantage factor (0 for wired calls, G.107 Table 1).
	A float64 `json:"a"`
}

// VoiceQuality is the E-model's result and its terms.
type VoiceQuality struct {
	Ta     float64 `json:"ta_ms"`   // the mouth-to-ear delay used
	Ppl    float64 `json:"ppl"`     // the loss percentage used, clamped to [0, 100]
	BurstR float64 `json:"burst_r"` // the burst ratio used
	Id     float64 `json:"id"`      // delay impairment (Idd of Ta)
	IeEff  float64 `json:"ie_eff"`  // effective equipment impairment
	R      float64 `json:"r"`       // transmission rating, not clamped
	MOS    float64 `json:"mos"`     // MOS_CQE from R
}

// EModel rates a call with the ITU-T G.107 E-model, simplified for the lab:
//
//	R = DefaultR − Id − Ie,eff + A
//
// where DefaultR = 93.2 folds Ro, Is and the echo impairments at their G.107 defaults, Id is
// the delay impairment [Idd] of Ta (talker echo Idte is taken as cancelled, so Id depends on
// the absolute delay only), Ie,eff is [IeEff] of the codec and the loss, and MOS is
// [MOSFromR]. The E-model has no jitter term: jitter counts through the playout buffer's
// delay (in Ta) and its late discards (in Ppl).
func EModel(in VoiceInput) VoiceQuality {
	q := VoiceQuality{
		Ta:     in.DelayMs + in.JitterFactor*in.JitterMs,
		Ppl:    math.Max(0, math.Min(100, in.LossPercent)),
		BurstR: in.BurstR,
	}
	if q.BurstR <= 0 {
		q.BurstR = 1
	}
	q.Id = Idd(q.Ta)
	q.IeEff = IeEff(in.Codec.Ie, in.Codec.Bpl, q.Ppl, q.BurstR)
	q.R = DefaultR - q.Id - q.IeEff + in.A
	q.MOS = MOSFromR(q.R)
	return q
}

// Idd is the G.107 impairment of a one-way (mouth-to-ear) delay of taMs milliseconds, with
// the default delay sensitivity (mT = 100 ms, sT = 1): 0 up to 100 ms, then
//
//	X   = log10(Ta/100) / log10(2)
//	Idd = 25·[(1 + X⁶)^(1/6) − 3·(1 + (X/3)⁶)^(1/6) + 2]
//
// E.g. Idd(150) ≈ 0.16, Idd(200) ≈ 3.04, Idd(400) ≈ 24.07.
func Idd(taMs float64) float64 {
	if taMs <= 100 {
		return 0
	}
	x := math.Log10(taMs/100) / math.Log10(2)
	return 25 * (math.Pow(1+math.Pow(x, 6), 1.0/6) - 3*math.Pow(1+math.Pow(x/3, 6), 1.0/6) + 2)
}

// IeEff is the G.107 effective equipment impairment of a codec (Ie, Bpl) under Ppl percent
// packet loss with burst ratio burstR:
//
//	Ie,eff = Ie + (95 − Ie) · Ppl / (Ppl/BurstR + Bpl)
//
// pplPercent is clamped to [0, 100]; burstR <= 0 is taken as 1 (random loss).
func IeEff(ie, bpl, pplPercent, burstR float64) float64 {
	ppl := math.Max(0, math.Min(100, pplPercent))
	if burstR <= 0 {
		burstR = 1
	}
	den := ppl/burstR + bpl
	if ppl == 0 || den <= 0 {
		return ie
	}
	return ie + (95-ie)*ppl/den
}

// MOSFromR converts a rating R to the conversational-quality MOS (MOS_CQE) of G.107 Annex B:
//
//	R <= 0:      1
//	0 < R < 100: 1 + 0.035·R + R·(R − 60)·(100 − R)·7·10⁻⁶
//	R >= 100:    4.5
//
// The polynomial dips just below 1 for R under about 6.5; the result is clamped to [1, 4.5].
// DefaultR gives 4.41.
func MOSFromR(r float64) float64 {
	switch {
	case r <= 0:
		return 1
	case r >= 100:
		return 4.5
	}
	mos := 1 + 0.035*r + r*(r-60)*(100-r)*7e-6
	return math.Max(1, math.Min(4.5, mos))
}

// Gilbert is a two-state (Gilbert) Markov loss model fitted to a loss pattern.
type Gilbert struct {
	Packets  int     `json:"packets"`   // length of the pattern
	Lost     int     `json:"lost"`      // lost packets in it
	LossRate float64 `json:"loss_rate"` // Lost / Packets
	// P is the probability that a packet is lost when the previous one arrived:
	// n(arrived→lost) / n(arrived→any). 0 when no arrived packet has a successor.
	P float64 `json:"p"`
	// R is the probability that a packet arrives when the previous one was lost:
	// n(lost→arrived) / n(lost→any). 1 when no lost packet has a successor (the bursts are
	// taken to end).
	R float64 `json:"r"`
	// BurstR is the G.107 burst ratio of the model, [GilbertBurstR](P, R).
	BurstR float64 `json:"burst_r"`
}

// FitGilbert fits a [Gilbert] model to lost (true = lost), in sequence order, by counting the
// transitions between consecutive packets (maximum likelihood for a two-state Markov chain).
// An empty pattern gives R = 1, BurstR = 1.
func FitGilbert(lost []bool) Gilbert {
	g := Gilbert{Packets: len(lost)}
	var n00, n01, n10, n11 int // 0 = arrived, 1 = lost; nXY counts X followed by Y
	for i, l := range lost {
		if l {
			g.Lost++
		}
		if i == 0 {
			continue
		}
		switch prev := lost[i-1]; {
		case !prev && !l:
			n00++
		case !prev && l:
			n01++
		case prev && !l:
			n10++
		default:
			n11++
		}
	}
	g.LossRate = ratio(float64(g.Lost), float64(g.Packets))
	g.P = ratio(float64(n01), float64(n00+n01))
	g.R = 1
	if n10+n11 > 0 {
		g.R = float64(n10) / float64(n10+n11)
	}
	g.BurstR = GilbertBurstR(g.P, g.R)
	return g
}

// GilbertBurstR is the burst ratio of a Gilbert model (G.107, Ie,eff clause): BurstR =
// 1/(p + r), with p the probability of a loss after an arrival and r of an arrival after a
// loss. It is the mean observed burst length over the mean burst length of random loss at the
// same rate: 1 for random loss (r = 1 − p), above 1 for bursty loss. p + r <= 0 gives 1.
func GilbertBurstR(p, r float64) float64 {
	if p+r <= 0 {
		return 1
	}
	return 1 / (p + r)
}
