"""A builder's bookings: search, filters, pages, a CSV of what is selected; a click on a row
opens the booking (the client's answers, its history and money)."""
from dashboard.lib import components, layout

OPEN_KEY = "my_open_booking"

viewer = layout.page("Bookings", caption="Every booking made with you, newest first.")
tz = layout.viewer_timezone(viewer)
components.bookings_list(
    viewer, tz, key="bookings", open_key=OPEN_KEY,
    empty_message="No bookings yet — share your profile link so clients can book and pay for a session.")
components.opened_booking(viewer, tz, open_key=OPEN_KEY)
