package metrics

import "testing"

func TestEModelDefaults(t *testing.T) {
	q := EModel(VoiceInput{Codec: CodecG711})
	near(t, "R", q.R, 93.2, 1e-12)
	// 1 + 0.035·93.2 + 93.2·33.2·6.8·7e-6 = 1 + 3.262 + 0.147285824 = 4.409285824.
	near(t, "MOS", q.MOS, 4.409285824, 1e-9)
	eq(t, "BurstR", q.BurstR, 1.0)
	eq(t, "Id", q.Id, 0.0)
	eq(t, "IeEff", q.IeEff, 0.0)
	sameKeys(t, q, "ta_ms", "ppl", "burst_r", "id", "ie_eff", "r", "mos")
	sameKeys(t, VoiceInput{}, "delay_ms", "jitter_ms", "jitter_factor", "loss_percent", "burst_r", "codec", "a")
	sameKeys(t, CodecOpus, "name", "ie", "bpl")
}

func TestIdd(t *testing.T) {
	eq(t, "Idd(0)", Idd(0), 0.0)
	eq(t, "Idd(100)", Idd(100), 0.0)
	// Ta = 150: X = log2(1.5) = 0.5849625, X⁶ = 0.0400641, (1+X⁶)^(1/6) = 1.0065680,
	// (X/3)⁶ = 5.4957e-5, (1+(X/3)⁶)^(1/6) = 1.0000091595;
	// Idd = 25·(1.0065680 - 3.0000275 + 2) = 0.16353.
	near(t, "Idd(150)", Idd(150), 0.16353, 1e-5)
	// Ta = 200: X = 1: 25·(2^(1/6) - 3·(730/729)^(1/6) + 2) = 25·(1.1224620 - 3.0006858 + 2) = 3.04441.
	near(t, "Idd(200)", Idd(200), 3.04441, 1e-5)
	// Ta = 400: X = 2: 25·(65^(1/6) - 3·(1 + 64/729)^(1/6) + 2) = 25·(2.0051747 - 3.0423713 + 2) = 24.07009.
	near(t, "Idd(400)", Idd(400), 24.07009, 1e-5)
	// Ta = 150 through the model: R = 93.2 - 0.16353.
	near(t, "R(150ms)", EModel(VoiceInput{DelayMs: 150, Codec: CodecG711}).R, 93.03647, 1e-5)
}

func TestIeEff(t *testing.T) {
	// G.711 with PLC, 2% random loss: 95·2/(2 + 25.1) = 7.01107; R = 86.18893,
	// MOS = 1 + 3.0166125 + 86.18893·26.18893·13.81107·7e-6 = 4.23483.
	q := EModel(VoiceInput{LossPercent: 2, Codec: CodecG711PLC})
	near(t, "IeEff PLC 2%", q.IeEff, 190/27.1, 1e-12)
	near(t, "R PLC 2%", q.R, 93.2-190/27.1, 1e-12)
	near(t, "MOS PLC 2%", q.MOS, 4.23483, 1e-5)
	// Without PLC: 95·2/(2 + 4.3) = 30.15873; R = 63.04127.
	q = EModel(VoiceInput{LossPercent: 2, Codec: CodecG711})
	near(t, "IeEff no PLC 2%", q.IeEff, 190/6.3, 1e-12)
	near(t, "MOS no PLC 2%", q.MOS, 3.25605, 1e-5)
	// Bursty: 5% at BurstR 2 with PLC: 95·5/(2.5 + 25.1) = 17.21014 (random: 95·5/30.1 = 15.78073).
	near(t, "IeEff bursty", IeEff(0, 25.1, 5, 2), 475/27.6, 1e-12)
	near(t, "IeEff random", IeEff(0, 25.1, 5, 0), 475/30.1, 1e-12)
	// G.729A: Ie 11 + 84·1/(1 + 19) = 15.2 at 1%.
	near(t, "IeEff G.729A 1%", IeEff(11, 19, 1, 1), 15.2, 1e-12)
	eq(t, "IeEff no loss", IeEff(11, 19, 0, 1), 11.0)
	near(t, "IeEff clamps Ppl", IeEff(0, 25.1, 150, 1), 9500/125.1, 1e-12)
}

func TestEModelJitterFactor(t *testing.T) {
	// Ta = 150 + 2·25 = 200 ms -> Id = Idd(200).
	q := EModel(VoiceInput{DelayMs: 150, JitterMs: 25, JitterFactor: 2, Codec: CodecOpus})
	eq(t, "Ta", q.Ta, 200.0)
	near(t, "Id", q.Id, 3.04441, 1e-5)
	// Without the factor the jitter is informational.
	eq(t, "Ta no factor", EModel(VoiceInput{DelayMs: 150, JitterMs: 25}).Ta, 150.0)
	// The advantage factor adds.
	near(t, "A", EModel(VoiceInput{A: 5, Codec: CodecG711}).R, 98.2, 1e-12)
}

func TestEModelMonotonic(t *testing.T) {
	prev := EModel(VoiceInput{Codec: CodecOpus})
	for loss := 0.5; loss <= 30; loss += 0.5 {
		q := EModel(VoiceInput{LossPercent: loss, Codec: CodecOpus})
		if q.R >= prev.R || q.MOS > prev.MOS {
			t.Fatalf("loss %.1f%%: R %v MOS %v not below %v %v", loss, q.R, q.MOS, prev.R, prev.MOS)
		}
		prev = q
	}
	prev = EModel(VoiceInput{DelayMs: 100, LossPercent: 1, Codec: CodecG711PLC})
	for d := 110.0; d <= 800; d += 10 {
		q := EModel(VoiceInput{DelayMs: d, LossPercent: 1, Codec: CodecG711PLC})
		if q.R >= prev.R || q.MOS > prev.MOS {
			t.Fatalf("delay %v ms: R %v MOS %v not below %v %v", d, q.R, q.MOS, prev.R, prev.MOS)
		}
		prev = q
	}
	// Burstier loss of the same rate is worse.
	if EModel(VoiceInput{LossPercent: 3, BurstR: 2, Codec: CodecOpus}).R >= EModel(VoiceInput{LossPercent: 3, BurstR: 1, Codec: CodecOpus}).R {
		t.Error("BurstR 2 not worse than random loss")
	}
}

func TestMOSFromR(t *testing.T) {
	eq(t, "R<0", MOSFromR(-5), 1.0)
	eq(t, "R=0", MOSFromR(0), 1.0)
	eq(t, "R>100", MOSFromR(120), 4.5)
	// R = 50: 1 + 1.75 + 50·(-10)·50·7e-6 = 2.575.
	near(t, "R=50", MOSFromR(50), 2.575, 1e-12)
	// R = 3: 1 + 0.105 - 3·57·97·7e-6 = 0.988891: clamped to 1.
	eq(t, "R=3", MOSFromR(3), 1.0)
	// R = 80: 1 + 2.8 + 80·20·20·7e-6 = 4.024.
	near(t, "R=80", MOSFromR(80), 4.024, 1e-12)
}

func TestFitGilbert(t *testing.T) {
	F, L := false, true
	// F F L L F F L L F F: F→F 3, F→L 2, L→L 2, L→F 2: p = 2/5, r = 2/4, BurstR = 1/0.9.
	g := FitGilbert([]bool{F, F, L, L, F, F, L, L, F, F})
	eq(t, "pattern", g, Gilbert{Packets: 10, Lost: 4, LossRate: 0.4, P: 0.4, R: 0.5, BurstR: 1 / 0.9})
	// A loss only at the end: its burst is taken to end (r = 1), p = 1/2: BurstR 2/3.
	g = FitGilbert([]bool{F, F, L})
	near(t, "tail R", g.R, 1, 0)
	near(t, "tail BurstR", g.BurstR, 2.0/3, 1e-15)
	eq(t, "empty", FitGilbert(nil), Gilbert{R: 1, BurstR: 1})
	eq(t, "no loss", FitGilbert([]bool{F, F, F}), Gilbert{Packets: 3, R: 1, BurstR: 1})
	eq(t, "all lost", FitGilbert([]bool{L, L}).BurstR, 1.0)
	// Random loss (r = 1 - p) has BurstR 1; a Gilbert chain with p = 0.01, r = 0.25 has 1/0.26.
	near(t, "random", GilbertBurstR(0.2, 0.8), 1, 1e-15)
	near(t, "bursty", GilbertBurstR(0.01, 0.25), 1/0.26, 1e-15)
	eq(t, "degenerate", GilbertBurstR(0, 0), 1.0)
}
