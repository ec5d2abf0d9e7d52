# Renders the digits 0-9 in DejaVu Sans Bold, 96 px, black on white, one cell
# of equal width each, into the PNG named on the command line: the glyph sheet
# that photo_worker::testing composes test photos from. Needs Pillow and the
# fonts-dejavu package; run once, the PNG is committed.
from PIL import Image, ImageDraw, ImageFont
import sys
font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf", 96)
# cell size from the widest digit
boxes = [font.getbbox(str(d)) for d in range(10)]
top = min(b[1] for b in boxes); bottom = max(b[3] for b in boxes)
w = max(b[2]-b[0] for b in boxes)
h = bottom - top
img = Image.new("L", (w*10, h), 255)
d = ImageDraw.Draw(img)
for i in range(10):
    b = boxes[i]
    x = i*w + (w - (b[2]-b[0]))//2 - b[0]
    d.text((x, -top), str(i), fill=0, font=font)
img.save(sys.argv[1], optimize=True)
print(w, h)
