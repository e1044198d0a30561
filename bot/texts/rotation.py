"""Sentences of the CA rotation: the operator's refusals, the move offer, the admins' view."""

from __future__ import annotations

from bot.texts import N_

ALREADY_ROTATING = N_(
    "A CA rotation is already under way: finish it (otcert ca rotate finish) or abort it first."
)
NOT_ROTATING = N_("No CA rotation is under way.")
TRUST_NOT_WRITTEN = N_(
    "The CRL file and CA bundle for both CAs could not be written, so the rotation did not "
    "start: {error}"
)
PEOPLE_STILL_ON_OLD = N_(
    "{count} people still depend on the old CA; their phones would stop connecting. "
    "Wait until they have moved (otcert ca rotate status), or add --force."
)
NEXT_IN_USE = N_(
    "{count} working certificates already come from the next CA; aborting would lock them "
    "out. Finish the rotation instead, or revoke those certificates first."
)
NOTHING_TO_MOVE = N_("You have no certificate that needs replacing.")

MOVE_OFFER = N_(
    "Your server is switching to a new certificate authority. A new certificate for "
    "<b>{device}</b> is ready for you: tap the button to get it, then install it and the new "
    "CA below. Your current certificate keeps working until then."
)
MOVE_BUTTON = N_("Get my new certificate")
NEW_CA_CAPTION = N_("The new CA (trust it on your phone as well). SHA-256: {fingerprint}")
BOTH_CAS_CAPTION = N_(
    "A CA change is under way: trust both CAs. This one is the {which} CA. SHA-256: {fingerprint}"
)
WHICH_OLD = N_("current")
WHICH_NEXT = N_("new")

STATUS_NONE = N_("No CA rotation is under way. CA: {fingerprint}")
STATUS_HEAD = N_(
    "CA rotation under way.\n"
    "Old CA: {old} - {old_people} people, {old_certs} working certificates.\n"
    "New CA: {new} - {new_people} people, {new_certs} working certificates.\n"
    "Not moved yet ({count}): {names}"
)
NOBODY = N_("nobody")
OFFERS_SENT = N_("Move offers sent: {sent}.")
