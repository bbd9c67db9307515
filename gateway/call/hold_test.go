package call

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/pion/webrtc/v4"

	"github.com/siprtc/siprtc/gateway/sipua"
)

func TestClientDirections(t *testing.T) {
	const head = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
	tests := []struct {
		name, sdp string
		want      map[webrtc.RTPCodecType]string
	}{
		{"media-level hold", head + "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=sendonly\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=inactive\r\n",
			map[webrtc.RTPCodecType]string{webrtc.RTPCodecTypeAudio: "sendonly", webrtc.RTPCodecTypeVideo: "inactive"}},
		{"session-level default, first m-line of a kind wins", head + "a=inactive\r\nm=audio 9 RTP/AVP 0\r\nm=audio 9 RTP/AVP 0\r\na=sendrecv\r\n",
			map[webrtc.RTPCodecType]string{webrtc.RTPCodecTypeAudio: "inactive"}},
		{"no attribute is sendrecv, a stopped m-line is left out", head + "m=audio 9 RTP/AVP 0\r\nm=video 0 RTP/AVP 96\r\na=sendonly\r\n",
			map[webrtc.RTPCodecType]string{webrtc.RTPCodecTypeAudio: "sendrecv"}},
	}
	for _, tt := range tests {
		got, err := clientDirections(tt.sdp)
		if err != nil || !sameDirections(got, tt.want) {
			t.Errorf("%s: got %v, %v; want %v", tt.name, got, err, tt.want)
		}
	}
	if _, err := clientDirections("not sdp"); err == nil {
		t.Error("garbage taken as an offer")
	}
}

func TestIntersectDirections(t *testing.T) {
	tests := []struct{ a, b, want string }{
		{"sendrecv", "", "sendrecv"},
		{"recvonly", "sendonly", "inactive"}, // the PBX holds, the client holds too
		{"sendrecv", "sendonly", "sendonly"}, // the PBX resumes, the client still holds
		{"recvonly", "", "recvonly"},
		{"sendrecv", "inactive", "inactive"},
	}
	for _, tt := range tests {
		if got := intersectDirections(tt.a, tt.b); got != tt.want {
			t.Errorf("intersect(%q, %q) = %q, want %q", tt.a, tt.b, got, tt.want)
		}
	}
}

// TestGlareDelay checks RFC 3261 14.1's ranges and what is retried.
func TestGlareDelay(t *testing.T) {
	for range 200 {
		if d := glareDelay(true); d < 2100*time.Millisecond || d > 4*time.Second || d%(10*time.Millisecond) != 0 {
			t.Fatalf("owner's delay %v outside 2.1-4 s in 10 ms units", d)
		}
		if d := glareDelay(false); d < 0 || d > 2*time.Second || d%(10*time.Millisecond) != 0 {
			t.Fatalf("other side's delay %v outside 0-2 s in 10 ms units", d)
		}
	}
	pending := &sipua.StatusError{Method: sip.INVITE, Code: 491, Reason: "Request Pending"}
	notAcceptable := &sipua.StatusError{Method: sip.INVITE, Code: 488, Reason: "Not Acceptable Here"}
	if !isGlare(fmt.Errorf("re-INVITE: %w", pending)) || !isGlare(sipua.ErrOfferPending) {
		t.Error("491 and a pending exchange must be retried")
	}
	if isGlare(notAcceptable) || isGlare(errors.New("timeout")) {
		t.Error("488 and a timeout must not be retried")
	}
	if e := reinviteError(notAcceptable).Error(); e == "" {
		t.Error("no client error for a refused re-INVITE")
	}
}
