package pbx

import "testing"

// TestCauseToSIP checks the hangup cause -> SIP response mapping against mod_sofia's
// hangup_cause_to_sip, and that failed B legs map back to causes that keep their code.
func TestCauseToSIP(t *testing.T) {
	for cause, want := range map[string]int{
		"UNALLOCATED_NUMBER": 404, "NO_ROUTE_DESTINATION": 404, "NO_ROUTE_TRANSIT_NET": 404,
		"USER_BUSY": 486, "NO_USER_RESPONSE": 408, "NO_ANSWER": 480, "SUBSCRIBER_ABSENT": 480,
		"USER_NOT_REGISTERED": 480, "NORMAL_CLEARING": 480, "NORMAL_UNSPECIFIED": 480, "": 480,
		"CALL_REJECTED": 603, "NUMBER_CHANGED": 410, "REDIRECTION_TO_NEW_DESTINATION": 410,
		"DESTINATION_OUT_OF_ORDER": 502, "INVALID_NUMBER_FORMAT": 484, "FACILITY_REJECTED": 501,
		"NORMAL_TEMPORARY_FAILURE": 503, "NETWORK_OUT_OF_ORDER": 503, "SWITCH_CONGESTION": 503,
		"OUTGOING_CALL_BARRED": 403, "INCOMING_CALL_BARRED": 403, "INCOMPATIBLE_DESTINATION": 488,
		"SERVICE_NOT_IMPLEMENTED": 501, "RECOVERY_ON_TIMER_EXPIRE": 504, "ORIGINATOR_CANCEL": 487,
		"EXCHANGE_ROUTING_ERROR": 483, "exchange_routing_error": 483, "SERVICE_UNAVAILABLE": 480,
		"MEDIA_TIMEOUT": 480,
	} {
		if got, _ := causeToSIP(cause); got != want {
			t.Errorf("causeToSIP(%q) = %d, want %d", cause, got, want)
		}
	}
	for _, code := range []int{404, 486, 408, 410, 483, 487, 603, 488, 484, 502, 503, 504} {
		if got, _ := causeToSIP(sipToCause(code)); got != code {
			t.Errorf("a B leg's %d comes back to the caller as %d", code, got)
		}
	}
}
