package ami

import (
	"context"
	"strconv"
	"strings"
	"time"
)

// Contact is one PJSIP contact (a registration binding), from PJSIPShowContacts.
type Contact struct {
	AOR       string // the AOR the contact is bound to (the directory user)
	Endpoint  string
	URI       string // the Contact URI, sip:user@ip:port
	UserAgent string
	CallID    string
	Status    string    // Reachable, Unreachable, NonQualified, Unknown, Created...
	Expires   time.Time // zero for a permanent contact
	Via       string    // ViaAddr:ViaPort, where the REGISTER came from
	Fields    map[string]string
}

// Contacts lists the PJSIP contacts (PJSIPShowContacts). No contact is not an error.
func (c *Client) Contacts(ctx context.Context) ([]Contact, error) {
	res, err := c.Do(ctx, "PJSIPShowContacts")
	if err != nil {
		if isNoneFound(err) {
			return nil, nil
		}
		return nil, err
	}
	out := make([]Contact, 0, len(res.Events))
	for _, e := range res.Events {
		if !strings.EqualFold(e.Get("Event"), "ContactList") {
			continue
		}
		ct := Contact{
			AOR: e.Get("Aor"), Endpoint: first(e.Get("Endpoint"), e.Get("EndpointName")), URI: e.Get("Uri"),
			UserAgent: e.Get("UserAgent"), CallID: e.Get("CallId"), Status: e.Get("Status"),
			Fields: e.Map(),
		}
		if ct.AOR == "" {
			ct.AOR, _, _ = strings.Cut(e.Get("ObjectName"), ";@")
		}
		if n, err := strconv.ParseInt(first(e.Get("ExpirationTime"), e.Get("RegExpire")), 10, 64); err == nil && n > 0 {
			ct.Expires = time.Unix(n, 0)
		}
		if a := e.Get("ViaAddr"); a != "" {
			ct.Via = a
			if p := e.Get("ViaPort"); p != "" && p != "0" {
				ct.Via += ":" + p
			}
		}
		out = append(out, ct)
	}
	return out, nil
}

// Channel is one active channel, from CoreShowChannels.
type Channel struct {
	Name        string // PJSIP/1000-00000001
	UniqueID    string
	LinkedID    string // the same for every channel of one call
	State       string // ChannelStateDesc: Ring, Ringing, Up...
	CallerIDNum string
	Exten       string
	Context     string
	Application string
	AppData     string
	BridgeID    string
	Duration    time.Duration
	Fields      map[string]string
}

// Channels lists the active channels (CoreShowChannels).
func (c *Client) Channels(ctx context.Context) ([]Channel, error) {
	res, err := c.Do(ctx, "CoreShowChannels")
	if err != nil {
		if isNoneFound(err) {
			return nil, nil
		}
		return nil, err
	}
	out := make([]Channel, 0, len(res.Events))
	for _, e := range res.Events {
		if !strings.EqualFold(e.Get("Event"), "CoreShowChannel") {
			continue
		}
		out = append(out, Channel{
			Name: e.Get("Channel"), UniqueID: e.Get("Uniqueid"), LinkedID: e.Get("Linkedid"),
			State: e.Get("ChannelStateDesc"), CallerIDNum: e.Get("CallerIDNum"), Exten: e.Get("Exten"),
			Context: e.Get("Context"), Application: e.Get("Application"), AppData: e.Get("ApplicationData"),
			BridgeID: e.Get("BridgeId"), Duration: parseHMS(e.Get("Duration")), Fields: e.Map(),
		})
	}
	return out, nil
}

// Calls groups channels by LinkedID: the number of calls in progress.
func Calls(chs []Channel) int {
	seen := map[string]bool{}
	for _, ch := range chs {
		id := ch.LinkedID
		if id == "" {
			id = ch.UniqueID
		}
		seen[id] = true
	}
	return len(seen)
}

// Hangup hangs up a channel (by name, or a /regex/ of names) with a Q.850 cause (0: the default,
// normal clearing).
func (c *Client) Hangup(ctx context.Context, channel string, cause int) error {
	kv := []string{"Channel", channel}
	if cause > 0 {
		kv = append(kv, "Cause", strconv.Itoa(cause))
	}
	_, err := c.Do(ctx, "Hangup", kv...)
	return err
}

// Command runs a CLI command and returns its output lines.
func (c *Client) Command(ctx context.Context, command string) ([]string, error) {
	res, err := c.Do(ctx, "Command", "Command", command)
	if err != nil {
		return nil, err
	}
	out := res.All("Output")
	if len(out) == 0 {
		// Asterisk before 14 sent the output as bare lines.
		out = res.All("")
	}
	return out, nil
}

// Ping checks the connection (Action: Ping).
func (c *Client) Ping(ctx context.Context) error {
	_, err := c.Do(ctx, "Ping")
	return err
}

// isNoneFound: some list actions answer an error instead of an empty list ("No Contacts found").
func isNoneFound(err error) bool {
	e, ok := err.(*Error)
	return ok && strings.Contains(strings.ToLower(e.Message), "no ") && strings.Contains(strings.ToLower(e.Message), "found")
}

func first(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

func parseHMS(s string) time.Duration {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return 0
	}
	var d time.Duration
	for i, unit := range []time.Duration{time.Hour, time.Minute, time.Second} {
		n, err := strconv.Atoi(parts[i])
		if err != nil {
			return 0
		}
		d += time.Duration(n) * unit
	}
	return d
}
