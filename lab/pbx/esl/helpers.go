package esl

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Status runs "status" (uptime, sessions): the health check.
func (c *Client) Status(ctx context.Context) (string, error) { return c.API(ctx, "status") }

// Registration is one sofia registration, from "sofia xmlstatus profile NAME reg".
type Registration struct {
	User        string `xml:"user"` // user@domain
	Contact     string `xml:"contact"`
	Agent       string `xml:"agent"`
	Status      string `xml:"status"`
	CallID      string `xml:"call-id"`
	NetworkIP   string `xml:"network-ip"`
	NetworkPort string `xml:"network-port"`
	AuthUser    string `xml:"sip-auth-user"`
	AuthRealm   string `xml:"sip-auth-realm"`
}

// Registrations lists the registrations of a sofia profile.
func (c *Client) Registrations(ctx context.Context, profile string) ([]Registration, error) {
	out, err := c.API(ctx, "sofia xmlstatus profile "+profile+" reg")
	if err != nil {
		return nil, err
	}
	return ParseRegistrations(out)
}

// ParseRegistrations reads the XML of "sofia xmlstatus profile NAME reg".
func ParseRegistrations(s string) ([]Registration, error) {
	var doc struct {
		Registrations []Registration `xml:"registrations>registration"`
	}
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	dec := xml.NewDecoder(strings.NewReader(s))
	dec.CharsetReader = latin1 // FreeSWITCH declares ISO-8859-1
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("%w: sofia xmlstatus: %v", ErrProtocol, err)
	}
	for i := range doc.Registrations {
		r := &doc.Registrations[i]
		r.User, r.Contact = strings.TrimSpace(r.User), strings.TrimSpace(r.Contact)
	}
	return doc.Registrations, nil
}

// latin1 reads ISO-8859-1 (and US-ASCII) as UTF-8.
func latin1(charset string, r io.Reader) (io.Reader, error) {
	switch strings.ToLower(charset) {
	case "iso-8859-1", "latin1", "us-ascii", "ascii":
	default:
		return nil, fmt.Errorf("charset %q", charset)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	rs := make([]rune, len(b))
	for i, c := range b {
		rs[i] = rune(c)
	}
	return strings.NewReader(string(rs)), nil
}

// Channel is one row of "show channels as json" (the fields the lab reads; Fields has all).
type Channel struct {
	UUID, Direction, Name, State, CallState, CIDNum, Dest, Application, CallUUID string
	Fields                                                                       map[string]string
}

// Channels lists the channels.
func (c *Client) Channels(ctx context.Context) ([]Channel, error) {
	out, err := c.API(ctx, "show channels as json")
	if err != nil {
		return nil, err
	}
	return ParseChannels(out)
}

// ParseChannels reads the JSON of "show channels as json" ({"row_count":0} when there is none).
func ParseChannels(s string) ([]Channel, error) {
	var doc struct {
		RowCount int                 `json:"row_count"`
		Rows     []map[string]string `json:"rows"`
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(s)), &doc); err != nil {
		return nil, fmt.Errorf("%w: show channels: %v", ErrProtocol, err)
	}
	out := make([]Channel, 0, len(doc.Rows))
	for _, r := range doc.Rows {
		out = append(out, Channel{
			UUID: r["uuid"], Direction: r["direction"], Name: r["name"], State: r["state"],
			CallState: r["callstate"], CIDNum: r["cid_num"], Dest: r["dest"],
			Application: r["application"], CallUUID: r["call_uuid"], Fields: r,
		})
	}
	return out, nil
}

// Calls counts the calls ("show calls count": "N total.").
func (c *Client) Calls(ctx context.Context) (int, error) {
	out, err := c.API(ctx, "show calls count")
	if err != nil {
		return 0, err
	}
	f := strings.Fields(out)
	if len(f) == 0 {
		return 0, fmt.Errorf("%w: show calls count: %q", ErrProtocol, out)
	}
	n, err := strconv.Atoi(f[0])
	if err != nil {
		return 0, fmt.Errorf("%w: show calls count: %q", ErrProtocol, out)
	}
	return n, nil
}

// Kill hangs up one channel (uuid_kill) with a cause name ("" for NORMAL_CLEARING).
func (c *Client) Kill(ctx context.Context, uuid, cause string) error {
	cmd := "uuid_kill " + uuid
	if cause != "" {
		cmd += " " + cause
	}
	_, err := c.API(ctx, cmd)
	return err
}

// HangupAll hangs up every channel (hupall) with a cause name ("" for NORMAL_CLEARING).
func (c *Client) HangupAll(ctx context.Context, cause string) error {
	if cause == "" {
		cause = "NORMAL_CLEARING"
	}
	_, err := c.API(ctx, "hupall "+cause)
	return err
}
