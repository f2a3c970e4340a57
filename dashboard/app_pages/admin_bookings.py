"""All bookings; a click on a row opens one in full: history, payments, refunds, side effects and
webhooks, with the admin's actions (refund, cancel, retry, reprocess)."""
from dashboard.lib import actions, components, layout

OPEN_KEY = "open_booking"  # other pages open a booking here by setting it (see layout.open_booking_page)

viewer = layout.page("Bookings", admin_only=True)
tz = layout.viewer_timezone(viewer)
components.bookings_list(viewer, tz, key="admin_bookings", open_key=OPEN_KEY,
                         empty_message="No bookings yet — they appear when clients book a builder.")
components.opened_booking(viewer, tz, open_key=OPEN_KEY)
actions.confirm_pending(viewer)
