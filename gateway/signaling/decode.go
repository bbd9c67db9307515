package signaling

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// wireString is a JSON string field decoded strictly: it remembers a wrong type or text that is
// not valid UTF-8 (raw invalid bytes or an unpaired \uD800-\uDFFF escape) instead of letting
// encoding/json silently replace it with U+FFFD, so the request can be refused naming the field.
type wireString struct {
	s   string
	set bool
	bad string // why the value is unusable, or ""
}

func (w *wireString) UnmarshalJSON(b []byte) error {
	*w = wireString{}
	if string(b) == "null" {
		return nil
	}
	w.set = true
	if len(b) == 0 || b[0] != '"' {
		w.bad = "must be a string"
		return nil
	}
	if !validJSONStringUTF8(b) {
		w.bad = "is not valid UTF-8"
		return nil
	}
	return json.Unmarshal(b, &w.s)
}

// validJSONStringUTF8 reports whether the quoted JSON string b decodes to valid UTF-8.
func validJSONStringUTF8(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' {
			continue
		}
		i++
		if i >= len(b) || b[i] != 'u' {
			continue
		}
		r, ok := hex4(b, i+1)
		if !ok {
			return false
		}
		i += 4
		switch {
		case r >= 0xdc00 && r <= 0xdfff:
			return false // a low surrogate without a high one
		case r >= 0xd800 && r <= 0xdbff:
			if i+6 >= len(b) || b[i+1] != '\\' || b[i+2] != 'u' {
				return false
			}
			lo, ok := hex4(b, i+3)
			if !ok || lo < 0xdc00 || lo > 0xdfff {
				return false
			}
			i += 6
		}
	}
	return true
}

func hex4(b []byte, at int) (rune, bool) {
	if at+4 > len(b) {
		return 0, false
	}
	n, err := strconv.ParseUint(string(b[at:at+4]), 16, 16)
	return rune(n), err == nil
}

type wireDescription struct {
	Type wireString `json:"type"`
	SDP  wireString `json:"sdp"`
}

type wireCandidate struct {
	Candidate        wireString `json:"candidate"`
	SDPMid           wireString `json:"sdpMid"`
	SDPMLineIndex    *uint16    `json:"sdpMLineIndex"`
	UsernameFragment wireString `json:"usernameFragment"`
}

// wireRequest is every field any request may carry; each type reads the ones it needs.
type wireRequest struct {
	Type        wireString       `json:"type"`
	ID          wireString       `json:"id"`
	Token       wireString       `json:"token"`
	CallID      wireString       `json:"callId"`
	Callee      wireString       `json:"callee"`
	Content     wireString       `json:"content"`
	ChannelID   wireString       `json:"channelId"`
	Response    wireString       `json:"response"`
	Reason      wireString       `json:"reason"`
	Digit       wireString       `json:"digit"`
	Duration    *int64           `json:"duration"`
	SIPCode     *int             `json:"sipCode"`
	Description *wireDescription `json:"description"`
	Candidate   *wireCandidate   `json:"candidate"`
}

// request is a decoded, validated client request.
type request struct {
	Type        string
	ID          string
	Token       string
	CallID      string
	Callee      string
	Content     string
	ChannelID   string
	Response    string
	Reason      string
	SIPCode     int
	Description *SessionDescription
	Candidate   ICECandidate
	DTMF        DTMF
}

// decodeRequest parses and validates one text frame. On failure it still returns the request's
// id when it could be read, so the error reply names the offending request.
func decodeRequest(frame []byte) (request, *Error) {
	var w wireRequest
	err := json.Unmarshal(frame, &w)
	var typeErr *json.UnmarshalTypeError
	switch {
	case err == nil:
	case errors.As(err, &typeErr) && typeErr.Field != "":
		// encoding/json keeps decoding after a type error, so the id is still usable.
		req := request{}
		if w.ID.bad == "" {
			req.ID = w.ID.s
		}
		return req, errorf(CodeInvalidArgument, typeErr.Field+" has the wrong type or is out of range")
	case errors.As(err, &typeErr):
		return request{}, errorf(CodeInvalidMessage, "a message must be a JSON object")
	default:
		return request{}, errorf(CodeInvalidMessage, "malformed JSON")
	}

	switch {
	case w.ID.bad != "":
		return request{}, errorf(CodeInvalidMessage, "id "+w.ID.bad)
	case w.ID.s == "":
		return request{}, errorf(CodeInvalidMessage, "missing id")
	case len(w.ID.s) > maxIDBytes:
		return request{}, errorf(CodeInvalidMessage, "id exceeds "+strconv.Itoa(maxIDBytes)+" bytes")
	}
	req := request{ID: w.ID.s}
	fail := func(code ErrorCode, msg string) (request, *Error) { return req, errorf(code, msg) }

	if w.Type.bad != "" {
		return fail(CodeInvalidMessage, "type "+w.Type.bad)
	}
	if !utf8.Valid(frame) {
		// Invalid bytes outside the fields we read (e.g. in an unknown key).
		return fail(CodeInvalidArgument, "message is not valid UTF-8")
	}
	req.Type = w.Type.s
	v := validator{}
	switch req.Type {
	case "":
		return fail(CodeInvalidMessage, "missing type")
	case TypeLogin:
		req.Token = v.text("token", w.Token, maxTokenBytes, true)
	case TypeLogout:
	case TypeInvite:
		req.Callee = v.user("callee", w.Callee)
		req.Content = v.text("content", w.Content, MaxContentBytes, false)
		req.ChannelID = v.text("channelId", w.ChannelID, MaxChannelIDBytes, false)
		req.Description = v.description(w.Description, false, "offer")
	case TypeCancel, TypeReceived:
		req.CallID = v.callID(w.CallID)
	case TypeAccept:
		req.CallID = v.callID(w.CallID)
		req.Response = v.text("response", w.Response, MaxContentBytes, false)
		req.Description = v.description(w.Description, false, "answer")
	case TypeRefuse:
		req.CallID = v.callID(w.CallID)
		req.Response = v.text("response", w.Response, MaxContentBytes, false)
		req.SIPCode = 603
		if w.SIPCode != nil {
			switch *w.SIPCode {
			case 486, 600, 603:
				req.SIPCode = *w.SIPCode
			default:
				v.failf("sipCode must be 486, 600 or 603")
			}
		}
	case TypeSDP:
		req.CallID = v.callID(w.CallID)
		req.Description = v.description(w.Description, true, "offer", "answer", "pranswer", "rollback")
	case TypeCandidate:
		req.CallID = v.callID(w.CallID)
		req.Candidate = v.candidate(w.Candidate)
	case TypeDTMF:
		req.CallID = v.callID(w.CallID)
		req.DTMF = v.dtmf(w.Digit, w.Duration)
	case TypeHangup:
		req.CallID = v.callID(w.CallID)
		req.Reason = v.text("reason", w.Reason, maxReasonBytes, false)
	default:
		return fail(CodeUnknownType, "unknown message type "+strconv.Quote(truncate(req.Type, 32)))
	}
	if v.err != "" {
		return fail(CodeInvalidArgument, v.err)
	}
	return req, nil
}

// validator keeps the first problem found in a request.
type validator struct{ err string }

func (v *validator) failf(msg string) {
	if v.err == "" {
		v.err = msg
	}
}

func (v *validator) text(field string, w wireString, max int, required bool) string {
	switch {
	case w.bad != "":
		v.failf(field + " " + w.bad)
	case required && w.s == "":
		v.failf("missing " + field)
	case len(w.s) > max:
		v.failf(field + " exceeds " + strconv.Itoa(max) + " bytes")
	}
	return w.s
}

func (v *validator) user(field string, w wireString) string {
	s := v.text(field, w, MaxUserIDBytes, true)
	if v.err == "" {
		if why := validUserID(s); why != "" {
			v.failf(field + " " + why)
		}
	}
	return s
}

func (v *validator) callID(w wireString) string { return v.text("callId", w, maxIDBytes, true) }

func (v *validator) description(w *wireDescription, required bool, types ...string) *SessionDescription {
	if w == nil {
		if required {
			v.failf("missing description")
		}
		return nil
	}
	d := &SessionDescription{
		Type: v.text("description.type", w.Type, 16, true),
		SDP:  v.text("description.sdp", w.SDP, 1<<20, false),
	}
	ok := false
	for _, t := range types {
		ok = ok || d.Type == t
	}
	if !ok {
		v.failf("description.type must be " + strings.Join(types, " or "))
	}
	if d.SDP == "" && d.Type != "rollback" {
		v.failf("missing description.sdp")
	}
	return d
}

func (v *validator) candidate(w *wireCandidate) ICECandidate {
	if w == nil {
		return ICECandidate{} // null or absent: end-of-candidates
	}
	c := ICECandidate{
		Candidate:     v.text("candidate.candidate", w.Candidate, maxCandidateBytes, false),
		SDPMLineIndex: w.SDPMLineIndex,
	}
	if w.SDPMid.set {
		mid := v.text("candidate.sdpMid", w.SDPMid, maxIDBytes, false)
		c.SDPMid = &mid
	}
	if w.UsernameFragment.set {
		ufrag := v.text("candidate.usernameFragment", w.UsernameFragment, 256, false)
		c.UsernameFragment = &ufrag
	}
	return c
}

func (v *validator) dtmf(digit wireString, duration *int64) DTMF {
	d := DTMF{Digit: strings.ToUpper(v.text("digit", digit, 1, true)), Duration: DefaultDTMFDuration}
	if v.err == "" && !strings.Contains("0123456789*#ABCD", d.Digit) {
		v.failf("digit must be one of 0-9 * # A-D")
	}
	if duration != nil {
		d.Duration = time.Duration(*duration) * time.Millisecond
		if *duration < MinDTMFDuration.Milliseconds() || *duration > MaxDTMFDuration.Milliseconds() {
			v.failf("duration must be " + strconv.FormatInt(MinDTMFDuration.Milliseconds(), 10) + " to " +
				strconv.FormatInt(MaxDTMFDuration.Milliseconds(), 10) + " ms")
		}
	}
	return d
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
