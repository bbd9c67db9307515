package pbx

import "strings"

// Hangup causes (Q.850 names as FreeSWITCH spells them) and their SIP mapping, after mod_sofia's
// hangup_cause_to_sip and sofia_glue_sip_cause_to_freeswitch, for the causes a B2BUA meets.
const (
	causeNormalClearing    = "NORMAL_CLEARING"
	causeUserBusy          = "USER_BUSY"
	causeNoUserResponse    = "NO_USER_RESPONSE"
	causeNoAnswer          = "NO_ANSWER"
	causeSubscriberAbsent  = "SUBSCRIBER_ABSENT"
	causeCallRejected      = "CALL_REJECTED"
	causeUnallocated       = "UNALLOCATED_NUMBER"
	causeNoRoute           = "NO_ROUTE_DESTINATION"
	causeUserNotRegistered = "USER_NOT_REGISTERED"
	causeOriginatorCancel  = "ORIGINATOR_CANCEL"
	causeIncompatibleDest  = "INCOMPATIBLE_DESTINATION"
	causeNormalTempFail    = "NORMAL_TEMPORARY_FAILURE"
	causeDestOutOfOrder    = "DESTINATION_OUT_OF_ORDER"
	causeInvalidNumber     = "INVALID_NUMBER_FORMAT"
	causeRecoveryOnTimer   = "RECOVERY_ON_TIMER_EXPIRE"
	causeServiceUnavail    = "SERVICE_UNAVAILABLE"
	causeMediaTimeout      = "MEDIA_TIMEOUT"
	causeNumberChanged     = "NUMBER_CHANGED"
	causeExchangeRouting   = "EXCHANGE_ROUTING_ERROR"
)

// causeToSIP is the SIP final response a channel hung up with cause gets (before answer): mod_sofia's
// hangup_cause_to_sip table. Every cause it does not list (NORMAL_CLEARING, USER_NOT_REGISTERED,
// SERVICE_UNAVAILABLE, MEDIA_TIMEOUT...) goes out as 480, as in FreeSWITCH.
func causeToSIP(cause string) (int, string) {
	switch strings.ToUpper(cause) {
	case causeUnallocated, causeNoRoute, "NO_ROUTE_TRANSIT_NET":
		return 404, "Not Found"
	case causeUserBusy:
		return 486, "Busy Here"
	case causeNoUserResponse:
		return 408, "Request Timeout"
	case causeCallRejected:
		return 603, "Decline"
	case causeNumberChanged, "REDIRECTION_TO_NEW_DESTINATION":
		return 410, "Gone"
	case causeDestOutOfOrder, "INVALID_PROFILE":
		return 502, "Bad Gateway"
	case causeInvalidNumber, "INVALID_URL", "INVALID_GATEWAY":
		return 484, "Address Incomplete"
	case "FACILITY_REJECTED", "FACILITY_NOT_IMPLEMENTED", "SERVICE_NOT_IMPLEMENTED":
		return 501, "Not Implemented"
	case causeNormalTempFail, "REQUESTED_CHAN_UNAVAIL", "NORMAL_CIRCUIT_CONGESTION", "NETWORK_OUT_OF_ORDER",
		"SWITCH_CONGESTION", "GATEWAY_DOWN", "BEARERCAPABILITY_NOTAVAIL":
		return 503, "Service Unavailable"
	case "OUTGOING_CALL_BARRED", "INCOMING_CALL_BARRED", "BEARERCAPABILITY_NOTAUTH":
		return 403, "Forbidden"
	case causeIncompatibleDest, "BEARERCAPABILITY_NOTIMPL":
		return 488, "Not Acceptable Here"
	case causeRecoveryOnTimer:
		return 504, "Server Time-out"
	case causeOriginatorCancel:
		return 487, "Request Terminated"
	case causeExchangeRouting:
		return 483, "Too Many Hops"
	default: // NO_ANSWER, SUBSCRIBER_ABSENT, NORMAL_UNSPECIFIED are listed as 480 too
		return 480, "Temporarily Unavailable"
	}
}

// sipToCause is the hangup cause of a B-leg that answered with a final error code.
func sipToCause(code int) string {
	switch code {
	case 404, 485, 604:
		return causeUnallocated
	case 486, 600:
		return causeUserBusy
	case 408:
		return causeNoUserResponse
	case 480:
		// mod_sofia says NO_USER_RESPONSE (which goes back out as 408); the lab keeps the
		// callee's 480 visible to the caller, which is what users of this deployment expect.
		return causeSubscriberAbsent
	case 487:
		return causeOriginatorCancel
	case 603:
		return causeCallRejected
	case 488, 606:
		return causeIncompatibleDest
	case 484:
		return causeInvalidNumber
	case 410:
		return causeNumberChanged
	case 482, 483:
		return causeExchangeRouting
	case 502:
		return causeDestOutOfOrder
	case 503:
		return causeNormalTempFail
	case 504:
		return causeRecoveryOnTimer
	}
	switch {
	case code >= 500:
		return causeNormalTempFail
	default:
		return "NORMAL_UNSPECIFIED"
	}
}
