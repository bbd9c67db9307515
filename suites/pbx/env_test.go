package pbx_test

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"

	"github.com/siprtc/siprtc/lab/netem"
	"github.com/siprtc/siprtc/lab/pbx"
	"github.com/siprtc/siprtc/lab/peers/sipphone"
)

const confDir = "../../freeswitch/conf"

// host is one machine of a spec: its network stack and address.
type host struct {
	net transport.Net
	ip  netip.Addr
}

// network is where a spec runs: real loopback sockets, or hosts on the lab's vnet.
type network interface {
	// host adds a machine; outside asks for an address the overlay's domains ACL does not allow
	// (only the emulated network has such addresses).
	host(name string, outside bool) host
	start()
}

type loopbackNet struct{ n transport.Net }

func (l loopbackNet) host(string, bool) host {
	return host{net: l.n, ip: netip.MustParseAddr("127.0.0.1")}
}
func (loopbackNet) start() {}

func loopback() network {
	n, err := stdnet.NewNet()
	Expect(err).NotTo(HaveOccurred())
	return loopbackNet{n}
}

// vnetNet puts lab hosts in 10.77.0.0/16 (allowed by the overlay's domains ACL) and outsiders in
// 10.99.0.0/16 (not allowed), on one emulated router.
type vnetNet struct {
	nw           *netem.Network
	lab, outside netip.Addr
}

func emulated() network {
	nw, err := netem.New("10.0.0.0/8")
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(nw.Close)
	return &vnetNet{nw: nw, lab: netip.MustParseAddr("10.77.0.10"), outside: netip.MustParseAddr("10.99.0.10")}
}

func (v *vnetNet) host(name string, outside bool) host {
	ip := v.lab
	if outside {
		ip, v.outside = v.outside, v.outside.Next()
	} else {
		v.lab = v.lab.Next()
	}
	h, err := v.nw.AddHost(name, ip.String())
	Expect(err).NotTo(HaveOccurred())
	return host{net: h.Net, ip: h.IP}
}

func (v *vnetNet) start() { Expect(v.nw.Start()).To(Succeed()) }

func logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(GinkgoWriter, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// startPBX starts the embedded PBX on the overlay; vars override preprocessor variables.
func startPBX(ctx context.Context, h host, vars map[string]string) *pbx.Embedded {
	p, err := pbx.StartEmbedded(ctx, pbx.EmbeddedConfig{ConfDir: confDir, Net: h.net, IP: h.ip, SIPPort: pbx.AnyPort, Vars: vars, Logger: logger()})
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(p.Close)
	return p
}

// startPhone starts a phone for a directory user; password "" means the directory's password.
func startPhone(ctx context.Context, p *pbx.Embedded, h host, user, password string, opts ...sipphone.Option) *sipphone.Phone {
	if password == "" {
		password, _ = p.Password(user)
	}
	ph, err := sipphone.New(sipphone.Config{
		Net: h.net, LocalIP: h.ip, User: user, Password: password, Domain: p.Domain(),
		Registrar: p.SIPAddr(), Support100rel: true, Logger: logger(),
	}, opts...)
	Expect(err).NotTo(HaveOccurred())
	Expect(ph.Start(ctx)).To(Succeed())
	DeferCleanup(ph.Close)
	return ph
}

// statusCode is the SIP status of a phone error (0 when it is not a final-response error).
func statusCode(err error) int {
	var se *sipphone.StatusError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}
