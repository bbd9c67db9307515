package pbx

import (
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// grantSessionTimer answers RFC 4028 session timers per leg, as FreeSWITCH does: a request
// asking for a session interval gets it back in the 2xx, with the UAC as the refresher when it
// supports timers (Require: timer then), so that its refreshes (re-INVITE or UPDATE) keep its
// leg alive without reaching the other leg. The PBX never refreshes a leg itself, so a request
// without timer support, or asking the PBX to refresh (refresher=uas), gets no session timer:
// the UAC then sees none (RFC 4028 7.2) rather than one that would expire.
func grantSessionTimer(req *sip.Request, res *sip.Response) {
	h := req.GetHeader("Session-Expires")
	if h == nil {
		h = req.GetHeader("x")
	}
	if h == nil {
		return
	}
	v, params, _ := strings.Cut(h.Value(), ";")
	n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
	if err != nil || n == 0 {
		return
	}
	refresher := ""
	for _, p := range strings.Split(params, ";") {
		if k, val, ok := strings.Cut(strings.TrimSpace(p), "="); ok && strings.EqualFold(k, "refresher") {
			refresher = strings.ToLower(strings.TrimSpace(val))
		}
	}
	supports := hasOption(req, "Supported", "timer") || hasOption(req, "Require", "timer")
	if !supports || refresher == "uas" {
		return
	}
	res.AppendHeader(sip.NewHeader("Session-Expires", strconv.FormatUint(n, 10)+";refresher=uac"))
	res.AppendHeader(sip.NewHeader("Require", "timer"))
}
