"""A builder's bookings: search, filters, pages, and a CSV of what is selected."""
from dashboard.lib import components, layout

viewer = layout.page("Bookings", caption="Every booking made with you, newest first.")
components.bookings_list(
    viewer, layout.viewer_timezone(viewer), key="bookings",
    empty_message="No bookings yet — share your profile link so clients can book and pay for a session.")
