"""Code the tests share, imported by them; never by the project.

batch (align_batch runs and CSVs), browser (headless Chromium: the `browser` and
`portal` fixtures), deliveries (signed inbound events), factories, fakes (FakeAlign),
images and portal_images (images built in memory), pages (a page's messages),
simulator_api (raw calls to the simulator, a stand-in app), threads (races), triggers
(what firing each trigger needs).
"""
