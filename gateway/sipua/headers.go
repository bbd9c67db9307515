package sipua

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// dialogKey names a dialog the same way from both ends: Call-ID, our tag, their tag.
func dialogKey(callID, localTag, remoteTag string) string {
	return callID + "|" + localTag + "|" + remoteTag
}

// requestDialogKey is the key of the dialog an incoming request belongs to: our tag is in To.
func requestDialogKey(req *sip.Request) (string, bool) {
	return messageDialogKey(req.CallID(), req.From(), req.To(), false)
}

// responseDialogKey is the key of the dialog a response to our request belongs to: our tag is in
// From.
func responseDialogKey(res *sip.Response) (string, bool) {
	return messageDialogKey(res.CallID(), res.From(), res.To(), true)
}

func messageDialogKey(callID *sip.CallIDHeader, from *sip.FromHeader, to *sip.ToHeader, oursInFrom bool) (string, bool) {
	if callID == nil || from == nil || to == nil {
		return "", false
	}
	fromTag, _ := from.Params.Get("tag")
	toTag, _ := to.Params.Get("tag")
	if oursInFrom {
		return dialogKey(callID.Value(), fromTag, toTag), true
	}
	return dialogKey(callID.Value(), toTag, fromTag), true
}

// HasOption reports whether the option-tag list header (Supported, Require, Allow...) of m
// lists tag, case-insensitively; Supported's compact form k is read too.
func HasOption(m interface{ GetHeaders(string) []sip.Header }, header, tag string) bool {
	return slices.ContainsFunc(optionTags(m, header), func(v string) bool { return strings.EqualFold(v, tag) })
}

// optionTags lists the values of a comma-separated header field (Require, Supported, Allow).
func optionTags(m interface{ GetHeaders(string) []sip.Header }, header string) []string {
	names := []string{header}
	if strings.EqualFold(header, "Supported") {
		names = append(names, "k") // compact form
	}
	var tags []string
	for _, name := range names {
		for _, h := range m.GetHeaders(name) {
			for _, v := range strings.Split(h.Value(), ",") {
				if v = strings.TrimSpace(v); v != "" && !slices.Contains(tags, v) {
					tags = append(tags, v)
				}
			}
		}
	}
	return tags
}

// HeaderUint reads a header field holding one unsigned number (RSeq, Expires, Min-SE...).
func HeaderUint(m interface{ GetHeader(string) sip.Header }, name string) (uint32, bool) {
	h := m.GetHeader(name)
	if h == nil {
		return 0, false
	}
	v, _, _ := strings.Cut(h.Value(), ";") // Session-Expires: 1800;refresher=uac
	n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
	if err != nil {
		return 0, false
	}
	return uint32(n), true
}

func itoa(v uint32) string { return strconv.FormatUint(uint64(v), 10) }

func newCallID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%x@siprtc", b)
}

// randSeq is a random initial CSeq or RSeq (RFC 3261 8.1.1.5, RFC 3262 3), kept at most 2^15 so
// that a long-lived sequence never reaches the 2^31 limit.
func randSeq() uint32 {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint32(b[:])&0x7fff + 1
}

func fromTag(req *sip.Request) string {
	tag, _ := req.From().Params.Get("tag")
	return tag
}
