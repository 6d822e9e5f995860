"""What a native board requires of a link before it serves the protocol (PROTOCOL.md, section 11), as rules with no
BLE stack: the emulated wearables enforce them over Bumble's SMP and ATT, and the C reference
(``fwb_check_access``, ``fwb_check_pairing`` in firmware_bridge/c/) implements the same, checked against these by
the test suite.
"""

from __future__ import annotations

from biomoe_edge.vocabulary import SecurityLevel


# ATT error codes (Core spec, Vol 3, Part F, 3.4.1.1) and SMP values (Vol 3, Part H, 3.5.1 and 3.5.5).
ATT_ERROR_INSUFFICIENT_AUTHENTICATION = 0x05  # not paired: the central should pair
ATT_ERROR_INSUFFICIENT_ENCRYPTION = 0x0F  # paired, link not encrypted: the central should encrypt
SMP_AUTH_REQ_BONDING = 0x01  # Bonding_Flags, bits 0-1: 01 = bonding
SMP_AUTH_REQ_SC = 0x08
SMP_ERROR_AUTHENTICATION_REQUIREMENTS = 0x03


def access_error(required, *, encrypted: bool, bonded: bool, secure_connections: bool) -> int:
    """The ATT error a board answers an access to a protocol characteristic with, on a link that is ``encrypted``
    or not, with a key the board holds for the peer (``bonded``) from LE Secure Connections or not; 0: allowed."""
    required = SecurityLevel.parse(required)
    if required is SecurityLevel.NONE:
        return 0
    if not encrypted:
        return ATT_ERROR_INSUFFICIENT_ENCRYPTION if bonded else ATT_ERROR_INSUFFICIENT_AUTHENTICATION
    if required is SecurityLevel.BONDED and not (bonded and secure_connections):
        return ATT_ERROR_INSUFFICIENT_AUTHENTICATION
    return 0


def pairing_refusal(required, auth_req: int) -> int:
    """The SMP Pairing Failed reason a board answers a Pairing Request whose AuthReq octet is ``auth_req`` with;
    0: go on. A ``bonded`` board takes only requests for bonding under LE Secure Connections."""
    required = SecurityLevel.parse(required)
    if required is SecurityLevel.BONDED and ((auth_req & 0x03) != SMP_AUTH_REQ_BONDING or not auth_req & SMP_AUTH_REQ_SC):
        return SMP_ERROR_AUTHENTICATION_REQUIREMENTS
    return 0
