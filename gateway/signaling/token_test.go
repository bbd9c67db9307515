package signaling

import (
	"strings"
	"testing"
	"time"
)

func TestToken(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	for _, user := range []string{"1005", "alice@example.com", "a.b.c", strings.Repeat("u", MaxUserIDBytes)} {
		tok := MakeToken(testSecret, user, now.Add(time.Minute))
		got, exp, err := VerifyToken(testSecret, tok, now)
		if err != nil || got != user || !exp.Equal(now.Add(time.Minute)) {
			t.Errorf("%q: got %q %v %v", user, got, exp, err)
		}
		if _, _, err := VerifyToken(testSecret, tok+"==", now); err != nil {
			t.Errorf("%q: padded token refused: %v", user, err)
		}
	}

	tok := MakeToken(testSecret, "1005", now)
	if _, _, err := VerifyToken(testSecret, tok, now); err != ErrTokenExpired {
		t.Errorf("at expiry: %v", err)
	}
	if _, _, err := VerifyToken(testSecret, tok, now.Add(-time.Second)); err != nil {
		t.Errorf("a second before expiry: %v", err)
	}

	valid := MakeToken(testSecret, "1005", now.Add(time.Hour))
	tampered := []byte(valid)
	tampered[2] ^= 1
	for name, tok := range map[string]string{
		"wrong secret":  MakeToken([]byte("other"), "1005", now.Add(time.Hour)),
		"forged expiry": MakeToken([]byte("other"), "1005", now.Add(-time.Hour)),
		"tampered":      string(tampered),
		"empty":         "",
		"not base64":    "!!!",
		"too short":     "MTAwNQ",
		"too long":      strings.Repeat("A", 2000),
		"bad user":      MakeToken(testSecret, "has space", now.Add(time.Hour)),
		"empty user":    MakeToken(testSecret, "", now.Add(time.Hour)),
	} {
		if _, _, err := VerifyToken(testSecret, tok, now); err != ErrInvalidToken {
			t.Errorf("%s: %v, want ErrInvalidToken", name, err)
		}
	}
}

func FuzzMessage(f *testing.F) {
	for _, seed := range []string{
		`{"type":"login","id":"1","token":"abc"}`,
		`{"type":"invite","id":"2","callee":"1001","content":"hi","channelId":"c","description":{"type":"offer","sdp":"v=0"}}`,
		`{"type":"candidate","id":"3","callId":"c","candidate":{"candidate":"x","sdpMid":"0","sdpMLineIndex":1,"usernameFragment":"u"}}`,
		`{"type":"candidate","id":"3","callId":"c","candidate":null}`,
		`{"type":"dtmf","id":"4","callId":"c","digit":"a","duration":100}`,
		`{"type":"refuse","id":"5","callId":"c","sipCode":486,"response":"\ud83d\ude00"}`,
		`{"type":"accept","id":"6","callId":"c","response":"\ud800"}`,
		`{"type":"hangup","id":"7","callId":"c","reason":"\u00e9"}`,
		"{\"type\":\"sdp\",\"id\":\"8\",\"callId\":\"c\",\"description\":{\"type\":\"answer\",\"sdp\":\"\xff\"}}",
		`{"type":7,"id":[1]}`,
		`[]`, `null`, `{`, ``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req, e := decodeRequest(data)
		if e != nil {
			if e.Code == "" || e.Message == "" {
				t.Fatalf("error without code or message: %+v", e)
			}
			if !validText(req.ID, maxIDBytes) {
				t.Fatalf("echoed id %q is not valid", req.ID)
			}
			return
		}
		if req.ID == "" || !validText(req.ID, maxIDBytes) {
			t.Fatalf("accepted id %q", req.ID)
		}
		for _, s := range []struct {
			v   string
			max int
		}{
			{req.Content, MaxContentBytes}, {req.Response, MaxContentBytes}, {req.ChannelID, MaxChannelIDBytes},
			{req.CallID, maxIDBytes}, {req.Token, maxTokenBytes}, {req.Reason, maxReasonBytes},
			{req.Candidate.Candidate, maxCandidateBytes}, {req.Callee, MaxUserIDBytes}, {req.Type, 16},
		} {
			if !validText(s.v, s.max) {
				t.Fatalf("accepted field %.40q (limit %d)", s.v, s.max)
			}
		}
		if req.Description != nil && !validText(req.Description.SDP, 1<<20) {
			t.Fatal("accepted an SDP that is not UTF-8")
		}
		if req.Type == TypeDTMF && (len(req.DTMF.Digit) != 1 || req.DTMF.Duration < MinDTMFDuration || req.DTMF.Duration > MaxDTMFDuration) {
			t.Fatalf("accepted DTMF %+v", req.DTMF)
		}
		if req.Type == TypeInvite && validUserID(req.Callee) != "" {
			t.Fatalf("accepted callee %q", req.Callee)
		}
	})
}

func validText(s string, max int) bool {
	return len(s) <= max && strings.ToValidUTF8(s, "\x00") == s
}

func TestValidJSONStringUTF8(t *testing.T) {
	for raw, want := range map[string]bool{
		`""`:                   true,
		`"plain"`:              true,
		`"\ud83d\ude00"`:       true, // a surrogate pair
		`"\u00e9\n\\u"`:        true,
		`"\ud800"`:             false,
		`"\udc00"`:             false,
		`"\ud83d\u0041"`:       false,
		`"\ud83dx"`:            false,
		"\"\xc3\x28\"":         false,
		`"\\ud800"`:            true, // an escaped backslash, not an escape
		`"\ud83d\ude00\ud800"`: false,
	} {
		if got := validJSONStringUTF8([]byte(raw)); got != want {
			t.Errorf("%s: %v, want %v", raw, got, want)
		}
	}
}

func BenchmarkDecodeRequest(b *testing.B) {
	frame := []byte(`{"type":"candidate","id":"42","callId":"KX3N7Q2Y4RZP6WJD5TBM2HCA7E","candidate":` +
		`{"candidate":"candidate:1 1 udp 2130706431 192.0.2.1 50000 typ host","sdpMid":"0","sdpMLineIndex":0}}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, e := decodeRequest(frame); e != nil {
			b.Fatal(e)
		}
	}
}
