package pbx

import (
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/siprtc/siprtc/lab/pbx/rtprelay"
)

// app runs one dialplan application on a channel; it returns true when the channel is done.
type app func(c *call, data string) (stop bool)

// apps are the dialplan applications the embedded PBX implements, with mod_dptools' semantics
// for what the FreeSWITCH overlay uses. Loading a dialplan that names any other application fails.
var apps map[string]app

func init() {
	apps = map[string]app{
		"set":        appSet,
		"export":     appExport,
		"unset":      appUnset,
		"log":        appLog,
		"info":       appInfo,
		"ring_ready": appRingReady,
		"pre_answer": appPreAnswer,
		"answer":     appAnswer,
		"sleep":      appSleep,
		"hangup":     appHangup,
		"echo":       appEcho,
		"bridge":     appBridge,
	}
}

func implementedApps() map[string]bool {
	m := make(map[string]bool, len(apps))
	for k := range apps {
		m[k] = true
	}
	return m
}

// ImplementedApps lists the dialplan applications the embedded PBX runs.
func ImplementedApps() []string {
	out := make([]string, 0, len(apps))
	for k := range apps {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func appSet(c *call, data string) bool {
	name, value, _ := strings.Cut(data, "=")
	c.set(strings.TrimSpace(name), value)
	return false
}

// appExport sets a variable on this channel and on the B legs it bridges to afterwards;
// "nolocal:" sets it on the B legs only, as mod_dptools does. A B leg gets the exported
// sip_h_* variables as headers (see call.bLegHeaders).
func appExport(c *call, data string) bool {
	local := true
	if rest, ok := strings.CutPrefix(data, "nolocal:"); ok {
		data, local = rest, false
	}
	name, value, _ := strings.Cut(data, "=")
	name = strings.TrimSpace(name)
	if name == "" {
		c.log.Warn("export: no variable name", "data", data)
		return false
	}
	c.mu.Lock()
	if local {
		c.vars[name] = value
	}
	c.exports[name] = value
	c.vars["export_vars"] = appendList(c.vars["export_vars"], name)
	c.mu.Unlock()
	return false
}

// appendList adds name to a comma-separated list once (FreeSWITCH's export_vars).
func appendList(list, name string) string {
	for _, n := range strings.Split(list, ",") {
		if n == name {
			return list
		}
	}
	if list == "" {
		return name
	}
	return list + "," + name
}

func appUnset(c *call, data string) bool {
	c.mu.Lock()
	delete(c.vars, strings.TrimSpace(data))
	c.mu.Unlock()
	return false
}

// appLog logs "LEVEL message" (FreeSWITCH levels: DEBUG INFO NOTICE WARNING ERR CRIT ALERT).
func appLog(c *call, data string) bool {
	level, msg, ok := strings.Cut(data, " ")
	if !ok {
		level, msg = "DEBUG", data
	}
	var l slog.Level
	switch strings.ToUpper(level) {
	case "DEBUG", "DEBUG1", "DEBUG2", "DEBUG3":
		l = slog.LevelDebug
	case "INFO", "NOTICE":
		l = slog.LevelInfo
	case "WARNING":
		l = slog.LevelWarn
	case "ERR", "ERROR", "CRIT", "ALERT", "CONSOLE":
		l = slog.LevelError
	default:
		l, msg = slog.LevelDebug, data
	}
	c.log.Log(c.ctx, l, msg, "app", "log")
	return false
}

func appInfo(c *call, _ string) bool {
	c.mu.Lock()
	keys := make([]string, 0, len(c.vars))
	for k := range c.vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	args := make([]any, 0, 2*len(keys))
	for _, k := range keys {
		args = append(args, k, c.vars[k])
	}
	c.mu.Unlock()
	c.log.Info("channel info", args...)
	return false
}

func appRingReady(c *call, _ string) bool {
	c.a.sendProvisional(180, "Ringing", nil, c.final)
	return false
}

// appPreAnswer sends 183 with the PBX's media (early media), like mod_dptools' pre_answer.
func appPreAnswer(c *call, _ string) bool {
	body, err := c.localMedia()
	if err != nil {
		c.log.Warn("pre_answer: no common codec", "err", err)
		c.hangup(causeIncompatibleDest)
		return true
	}
	c.a.sendProvisional(183, "Session Progress", body, c.final)
	return false
}

// appAnswer answers the channel with the PBX terminating media.
func appAnswer(c *call, _ string) bool {
	return !c.answer()
}

func (c *call) answer() bool {
	c.mu.Lock()
	if c.answered {
		c.mu.Unlock()
		return true
	}
	c.mu.Unlock()
	body, err := c.localMedia()
	if err != nil {
		c.log.Warn("answer: no common codec", "err", err)
		c.hangup(causeIncompatibleDest)
		return false
	}
	return c.confirmA(body)
}

// confirmA sends the 200 OK to the A leg and waits for its ACK.
func (c *call) confirmA(body []byte) bool {
	c.mu.Lock()
	if c.hungUp {
		c.mu.Unlock()
		return false
	}
	c.answered = true
	c.mu.Unlock()
	c.markFinal()
	c.p.stats.answered.Add(1)
	if !c.a.sendFinal2xx(c.ctx, body) {
		c.log.Warn("no ACK for 200 OK")
		c.hangup(causeRecoveryOnTimer)
		return false
	}
	c.set("answer_epoch", strconv.FormatInt(time.Now().Unix(), 10))
	return true
}

// localMedia builds the PBX's answer to the A leg's offer when the PBX itself terminates media
// (answer, pre_answer, echo): one endpoint per m-line, the first codec of the profile's
// inbound-codec-prefs the caller offered.
func (c *call) localMedia() ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.a.localSDP != nil {
		return c.a.localSDP, nil
	}
	prefs := strings.Split(c.p.profile.Param("inbound-codec-prefs", "PCMU,PCMA"), ",")
	eps, body, err := answerSDP(c.p, c.a.media, prefs)
	if err != nil {
		return nil, err
	}
	c.a.eps = eps
	c.a.localSDP = body
	return body, nil
}

func appSleep(c *call, data string) bool {
	ms, err := strconv.Atoi(strings.TrimSpace(data))
	if err != nil || ms < 0 {
		c.log.Warn("sleep: not a number of milliseconds", "data", data)
		return false
	}
	t := time.NewTimer(time.Duration(ms) * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
		return false
	case <-c.a.bye:
		c.hangup(causeNormalClearing)
		return true
	case <-c.ctx.Done():
		return true
	}
}

func appHangup(c *call, data string) bool {
	cause := strings.TrimSpace(data)
	if cause == "" {
		cause = causeNormalClearing
	}
	c.hangup(strings.ToUpper(cause))
	return true
}

// appEcho answers and sends every RTP packet back to where it came from (extension 9196).
func appEcho(c *call, _ string) bool {
	if !c.answer() {
		return true
	}
	c.mu.Lock()
	for i, e := range c.a.eps {
		if e == nil {
			continue
		}
		setRemote(e, c.a.media[i])
		r := rtprelay.NewEcho(e)
		r.Start()
		c.relays = append(c.relays, r)
	}
	c.mu.Unlock()
	c.waitAHangup()
	return true
}
