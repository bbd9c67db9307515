package config

import (
	"errors"
	"reflect"
	"testing"
)

// TestRepairKeys: [media] red, red_distance, flexfec, fec_media_packets and fec_packets.
func TestRepairKeys(t *testing.T) {
	c, _ := mustParse(t, base)
	m := c.Media
	if got := []any{m.RED, m.REDDistance, m.FlexFEC, m.FECMediaPackets, m.FECPackets}; !reflect.DeepEqual(got, []any{false, 1, false, 5, 2}) {
		t.Errorf("defaults %v", got)
	}
	c, _ = mustParse(t, base+"[media]\nred=1\nred_distance=3\nflexfec=1\nfec_media_packets=10\nfec_packets=4\n")
	m = c.Media
	if got := []any{m.RED, m.REDDistance, m.FlexFEC, m.FECMediaPackets, m.FECPackets}; !reflect.DeepEqual(got, []any{true, 3, true, 10, 4}) {
		t.Errorf("values %v", got)
	}
	for _, tt := range []struct {
		name, text, want string
		kind             error
	}{
		{"red flag", base + "[media]\nred=yes\n",
			`rtx.conf:7: [media] red "yes": want 0 or 1`, ErrInvalid},
		{"red_distance", base + "[media]\nred_distance=0\n",
			`rtx.conf:7: [media] red_distance "0": want the number of earlier Opus frames each RED packet repeats, 1..8`, ErrInvalid},
		{"fec_media_packets", base + "[media]\nfec_media_packets=49\n",
			`rtx.conf:7: [media] fec_media_packets "49": want the number of video packets each FlexFEC batch protects, 1..48`, ErrInvalid},
		{"fec_packets", base + "[media]\nfec_packets=x\n",
			`rtx.conf:7: [media] fec_packets "x": want the number of FlexFEC packets per batch, 1..48`, ErrInvalid},
		{"red without opus", base + "[media]\ncodecs=pcmu,vp8\nred=1\n",
			`rtx.conf:8: [media] red "1": want opus in codecs when red=1 (RED carries Opus), or red=0`, ErrConflict},
		{"flexfec without video", base + "[media]\nvideo=0\nflexfec=1\n",
			`rtx.conf:8: [media] flexfec "1": want video=1 when flexfec=1 (FlexFEC protects video), or flexfec=0`, ErrConflict},
		{"more FEC than media", base + "[media]\nfec_media_packets=3\nfec_packets=4\n",
			`rtx.conf:8: [media] fec_packets "4": want fec_packets <= fec_media_packets, found 4 FEC packets for 3 media packets`, ErrConflict},
		{"more FEC than the default media", base + "[media]\nfec_packets=6\n",
			`rtx.conf:7: [media] fec_packets "6": want fec_packets <= fec_media_packets, found 6 FEC packets for 5 media packets`, ErrConflict},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := parse(t, tt.text)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("error\n got: %v\nwant: %s", err, tt.want)
			}
			if !errors.Is(err, tt.kind) {
				t.Errorf("error is not %v", tt.kind)
			}
		})
	}
}
