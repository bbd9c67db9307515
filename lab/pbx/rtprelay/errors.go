package rtprelay

import "errors"

var (
	// ErrNoPorts is returned by [Allocator.Allocate] when every port pair of
	// the range is in use.
	ErrNoPorts = errors.New("rtprelay: no free RTP port pair")
	// ErrPortRange is returned by [NewAllocator] for a range it cannot use.
	ErrPortRange = errors.New("rtprelay: invalid RTP port range")
	// ErrAddress is returned for an IP address that cannot be used.
	ErrAddress = errors.New("rtprelay: invalid address")
	// ErrEndpointClosed is returned when closing an endpoint twice.
	ErrEndpointClosed = errors.New("rtprelay: endpoint closed")
	// ErrSDP is returned for a session description that cannot be parsed.
	ErrSDP = errors.New("rtprelay: invalid SDP")
	// ErrMediaCount is returned by [RewriteSDP] when the number of addresses
	// differs from the number of m-lines.
	ErrMediaCount = errors.New("rtprelay: address count differs from m-line count")
)
