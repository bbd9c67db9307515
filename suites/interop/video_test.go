package interop_test

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/pion/rtcp"

	"github.com/siprtc/siprtc/gateway/signaling"
	"github.com/siprtc/siprtc/lab/peers/sipphone"
	"github.com/siprtc/siprtc/lab/peers/webclient"
)

const (
	videoFPS     = 25
	videoBitrate = 300_000
	videoWindow  = 3 * time.Second
)

// videoReport is what a video call measured over videoWindow, at both ends.
type videoReport struct {
	ClientSent, ClientRx      uint64 // frames the client sent, frames it received
	PhoneSent, PhoneRx        uint64
	PhoneKeyRx, ClientKeyRx   uint64
	PhoneCodec                string
	PhoneKeyRequests          uint64 // PLI/FIR the phone got, after the client's PLI
	PhoneKeyRequestsBeforePLI uint64
	PhoneFastUpdates          uint64 // SIP INFO picture_fast_update the phone got, after the PLI
	PhoneFastUpdatesBeforePLI uint64
	PhoneVideoPeer, PBX       netip.Addr // where the phone sends video: the PBX's relay
	// The client's send and receive codecs, and the H.264 NAL units each end reassembled (and
	// how many failed their checksum).
	ClientSendCodec, ClientRecvCodec string
	ClientNAL, ClientBadNAL          uint64
	PhoneNAL, PhoneBadNAL            uint64
	ClientFrames, PhoneFrames        uint64 // frames received since the call began
}

// measureVideo waits for video at both ends, counts frames over videoWindow, then sends a PLI
// from the client for the video it receives and waits for it to reach the phone.
func measureVideo(ctx context.Context, c *webclient.Call, pc *sipphone.Call) (videoReport, error) {
	var rep videoReport
	if err := c.WaitConnected(ctx); err != nil {
		return rep, fmt.Errorf("client not connected: %w", err)
	}
	if err := c.WaitMedia(ctx, 10, 5); err != nil {
		return rep, fmt.Errorf("no video at the client: %w (%+v)", err, c.Stats().Video)
	}
	if err := waitFor(ctx, 5*time.Second, func() bool { return pc.Media().Stats().Video.FramesReceived >= 5 }); err != nil {
		return rep, fmt.Errorf("no video at the phone: %+v", pc.Media().Stats().Video)
	}
	c0, p0 := c.Stats().Video, pc.Media().Stats().Video
	time.Sleep(videoWindow)
	c1, p1 := c.Stats().Video, pc.Media().Stats().Video
	rep.ClientSent, rep.ClientRx = c1.FramesSent-c0.FramesSent, c1.FramesReceived-c0.FramesReceived
	rep.PhoneSent, rep.PhoneRx = p1.FramesSent-p0.FramesSent, p1.FramesReceived-p0.FramesReceived
	rep.PhoneKeyRx, rep.ClientKeyRx = p1.KeyFramesReceived, c1.KeyFramesReceived
	rep.PhoneCodec, rep.PhoneVideoPeer = p1.Codec, p1.RemoteAddr.Addr()
	rep.ClientSendCodec, rep.ClientRecvCodec = c1.SendCodec, c1.ReceiveCodec
	rep.ClientNAL, rep.ClientBadNAL = c1.NALUnits, c1.CorruptNALUnits
	rep.PhoneNAL, rep.PhoneBadNAL = p1.NALUnits, p1.CorruptNALUnits
	rep.ClientFrames, rep.PhoneFrames = c1.FramesReceived, p1.FramesReceived
	rep.PhoneKeyRequestsBeforePLI = p1.KeyFrameRequests
	rep.PhoneFastUpdatesBeforePLI = p1.FastUpdates

	// The client asks for a key frame of the video it receives: the gateway carries it to the
	// SIP side as RTCP PLI, which the PBX relays to the phone, and as SIP INFO
	// picture_fast_update, which the PBX passes on in the dialog.
	_, received := c.Packets()
	var ssrc uint32
	for _, r := range received {
		if r.Kind == "video" {
			ssrc = r.SSRC
		}
	}
	if err := c.PeerConnection().WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}}); err != nil {
		return rep, fmt.Errorf("PLI: %w", err)
	}
	_ = waitFor(ctx, 3*time.Second, func() bool {
		v := pc.Media().Stats().Video
		return v.KeyFrameRequests > rep.PhoneKeyRequestsBeforePLI && v.FastUpdates > rep.PhoneFastUpdatesBeforePLI
	})
	rep.PhoneKeyRequests = pc.Media().Stats().Video.KeyFrameRequests
	rep.PhoneFastUpdates = pc.Media().Stats().Video.FastUpdates
	return rep, nil
}

func expectVideoBothWays(n network, codec string, rep videoReport) {
	GinkgoWriter.Printf("video: %+v\n", rep)
	Expect(rep.PhoneCodec).To(Equal(codec))
	Expect(rep.ClientSendCodec).To(Equal(codec))
	Expect(rep.ClientRecvCodec).To(Equal(codec))
	Expect(rep.PhoneVideoPeer).To(Equal(rep.PBX), "video goes through the PBX's relay")
	Expect(rep.ClientSent).To(BeNumerically(">=", uint64(videoWindow/time.Second)*videoFPS*8/10))
	Expect(rep.PhoneSent).To(BeNumerically(">=", uint64(videoWindow/time.Second)*videoFPS*8/10))
	Expect(float64(rep.PhoneRx)).To(BeNumerically(">", 0.8*float64(rep.ClientSent)), "client -> phone frames")
	Expect(float64(rep.ClientRx)).To(BeNumerically(">", 0.8*float64(rep.PhoneSent)), "phone -> client frames")
	Expect(rep.PhoneKeyRx).To(BeNumerically(">", 0))
	Expect(rep.ClientKeyRx).To(BeNumerically(">", 0))
	Expect(rep.PhoneKeyRequests).To(BeNumerically(">", rep.PhoneKeyRequestsBeforePLI), "the client's PLI reaches the phone")
	if n.asterisk() {
		// Asterisk turns a key-frame request (the gateway's RTCP PLI and its SIP INFO
		// picture_fast_update alike) into a video update of the other channel, which chan_pjsip
		// sends to a VP8 (or H.264) stream as an RTCP FIR, never as an INFO: the phone gets the
		// FIR counted above and no INFO. The embedded PBX relays both as they are.
		Expect(rep.PhoneFastUpdates).To(Equal(rep.PhoneFastUpdatesBeforePLI), "Asterisk sends VP8 key-frame requests as RTCP FIR, not SIP INFO")
		return
	}
	Expect(rep.PhoneFastUpdates).To(BeNumerically(">", rep.PhoneFastUpdatesBeforePLI), "the client's PLI reaches the phone as SIP INFO picture_fast_update")
}

func videoClient(w *world, user string, opts ...webclient.Option) (*webclient.Client, error) {
	cl, err := w.newClientWith(user, func(c *webclient.Config) { c.Video = true },
		append([]webclient.Option{webclient.WithVideo(videoBitrate, videoFPS, 0)}, opts...)...)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(w.ctx, 10*time.Second)
	defer cancel()
	if err := cl.Connect(ctx); err != nil {
		return nil, fmt.Errorf("client %s: %w", user, err)
	}
	return cl, nil
}

var _ = Describe("Video both ways", Label("interop"), func() {
	for _, n := range networks {
		Context("over "+n.name, func() {
			It("carries VP8 from a WebRTC client to a SIP phone and back, and the client's PLI reaches the phone", func() {
				rep, err := inWorld(n, func(w *world) (videoReport, error) {
					phone, err := w.phone("1001", sipphone.Video("VP8", videoBitrate, videoFPS))
					if err != nil {
						return videoReport{}, err
					}
					phone.OnIncoming(ringThenAnswer(100*time.Millisecond, make(chan string, 1)))
					cl, err := videoClient(w, "alice")
					if err != nil {
						return videoReport{}, err
					}
					ctx, cancel := context.WithTimeout(w.ctx, 20*time.Second)
					defer cancel()
					c, pc, _, err := callPhone(ctx, cl, phone, "1001")
					if err != nil {
						return videoReport{}, err
					}
					rep, err := measureVideo(ctx, c, pc)
					rep.PBX = w.hosts["pbx"].ip
					if err != nil {
						return rep, err
					}
					return rep, c.Hangup(ctx, "bye")
				})
				Expect(err).NotTo(HaveOccurred())
				expectVideoBothWays(n, "VP8", rep)
			})

			DescribeTable("passes H.264 through unchanged both ways when both ends negotiate only H.264: every NAL unit arrives intact, IDRs included",
				func(fromClient bool) {
					rep, err := inWorld(n, func(w *world) (videoReport, error) {
						phone, err := w.phone("1001", sipphone.Video("H264", videoBitrate, videoFPS))
						if err != nil {
							return videoReport{}, err
						}
						phone.OnIncoming(ringThenAnswer(100*time.Millisecond, make(chan string, 1)))
						user := "bob"
						if fromClient {
							user = "alice"
						}
						cl, err := videoClient(w, user, webclient.WithVideoCodec("h264"), webclient.WithAutoAccept(100*time.Millisecond))
						if err != nil {
							return videoReport{}, err
						}
						ctx, cancel := context.WithTimeout(w.ctx, 20*time.Second)
						defer cancel()
						var c *webclient.Call
						var pc *sipphone.Call
						if fromClient {
							if c, pc, _, err = callPhone(ctx, cl, phone, "1001"); err != nil {
								return videoReport{}, err
							}
						} else {
							res := <-dial(ctx, phone, "0bob", make(chan int, 8))
							if res.err != nil {
								return videoReport{}, res.err
							}
							if err := waitFor(ctx, 5*time.Second, func() bool { return len(cl.Calls()) == 1 }); err != nil {
								return videoReport{}, err
							}
							c, pc = cl.Calls()[0], res.call
							if _, err := c.WaitState(ctx, string(signaling.RemoteAccepted)); err != nil {
								return videoReport{}, err
							}
						}
						rep, err := measureVideo(ctx, c, pc)
						rep.PBX = w.hosts["pbx"].ip
						if err != nil {
							return rep, err
						}
						return rep, pc.Hangup(ctx)
					})
					Expect(err).NotTo(HaveOccurred())
					expectVideoBothWays(n, "H264", rep)
					AddReportEntry("H.264", fmt.Sprintf("NAL units: %d at the phone (%d corrupt), %d at the client (%d corrupt)", rep.PhoneNAL, rep.PhoneBadNAL, rep.ClientNAL, rep.ClientBadNAL))
					Expect(rep.PhoneNAL).To(BeNumerically(">=", rep.PhoneFrames), "client -> phone: at least one NAL unit a frame")
					Expect(rep.ClientNAL).To(BeNumerically(">=", rep.ClientFrames), "phone -> client: at least one NAL unit a frame")
					Expect(rep.PhoneBadNAL).To(BeZero(), "client -> phone NAL units intact")
					Expect(rep.ClientBadNAL).To(BeZero(), "phone -> client NAL units intact")
				},
				Entry("the WebRTC client calls the SIP phone", true),
				Entry("the SIP phone calls the WebRTC client (0 + user)", false),
			)

			It("carries VP8 from a SIP phone (0 + user) to a WebRTC client and back, and the client's PLI reaches the phone", func() {
				rep, err := inWorld(n, func(w *world) (videoReport, error) {
					phone, err := w.phone("1001", sipphone.Video("VP8", videoBitrate, videoFPS))
					if err != nil {
						return videoReport{}, err
					}
					cl, err := videoClient(w, "bob", webclient.WithAutoAccept(100*time.Millisecond))
					if err != nil {
						return videoReport{}, err
					}
					ctx, cancel := context.WithTimeout(w.ctx, 20*time.Second)
					defer cancel()
					res := <-dial(ctx, phone, "0bob", make(chan int, 8))
					if res.err != nil {
						return videoReport{}, res.err
					}
					if err := waitFor(ctx, 5*time.Second, func() bool { return len(cl.Calls()) == 1 }); err != nil {
						return videoReport{}, err
					}
					c := cl.Calls()[0]
					if _, err := c.WaitState(ctx, string(signaling.RemoteAccepted)); err != nil {
						return videoReport{}, err
					}
					rep, err := measureVideo(ctx, c, res.call)
					rep.PBX = w.hosts["pbx"].ip
					if err != nil {
						return rep, err
					}
					return rep, res.call.Hangup(ctx)
				})
				Expect(err).NotTo(HaveOccurred())
				expectVideoBothWays(n, "VP8", rep)
			})
		})
	}
})
