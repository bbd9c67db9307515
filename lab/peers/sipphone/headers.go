package sipphone

import (
	"slices"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// dialogKey names a dialog the same way from both ends of the phone: Call-ID, our tag, their tag.
func dialogKey(callID, localTag, remoteTag string) string {
	return callID + "|" + localTag + "|" + remoteTag
}

// requestDialogKey is the key of the dialog an incoming request belongs to.
func requestDialogKey(req *sip.Request) (string, bool) {
	callID, from, to := req.CallID(), req.From(), req.To()
	if callID == nil || from == nil || to == nil {
		return "", false
	}
	local, _ := to.Params.Get("tag")
	remote, _ := from.Params.Get("tag")
	return dialogKey(callID.Value(), local, remote), true
}

// responseDialogKey is the key of the dialog a response to our request belongs to.
func responseDialogKey(res *sip.Response) (string, bool) {
	callID, from, to := res.CallID(), res.From(), res.To()
	if callID == nil || from == nil || to == nil {
		return "", false
	}
	local, _ := from.Params.Get("tag")
	remote, _ := to.Params.Get("tag")
	return dialogKey(callID.Value(), local, remote), true
}

// hasOptionTag reports whether the Supported or Require header fields of m list tag.
func hasOptionTag(m interface{ GetHeaders(string) []sip.Header }, header, tag string) bool {
	names := []string{header}
	if strings.EqualFold(header, "Supported") {
		names = append(names, "k") // compact form
	}
	for _, name := range names {
		for _, h := range m.GetHeaders(name) {
			for _, v := range strings.Split(h.Value(), ",") {
				if strings.EqualFold(strings.TrimSpace(v), tag) {
					return true
				}
			}
		}
	}
	return false
}

// optionTags lists the option tags of a Require header.
func optionTags(m interface{ GetHeaders(string) []sip.Header }, header string) []string {
	var tags []string
	for _, h := range m.GetHeaders(header) {
		for _, v := range strings.Split(h.Value(), ",") {
			if v = strings.TrimSpace(v); v != "" && !slices.Contains(tags, v) {
				tags = append(tags, v)
			}
		}
	}
	return tags
}

func headerUint(m interface{ GetHeader(string) sip.Header }, name string) (uint32, bool) {
	h := m.GetHeader(name)
	if h == nil {
		return 0, false
	}
	v, err := strconv.ParseUint(strings.TrimSpace(h.Value()), 10, 32)
	if err != nil {
		return 0, false
	}
	return uint32(v), true
}
