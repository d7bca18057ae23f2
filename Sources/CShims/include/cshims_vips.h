#ifndef CONVEYOR_CSHIMS_VIPS_H
#define CONVEYOR_CSHIMS_VIPS_H
/* libvips calls that are variadic or need a C callback, for the Vips target. */
#include <vips/vips.h>

/* Starts libvips once: loaders blocked except jpeg/png/webp/gif/heif, operation cache off.
 * Returns 0, or -1 with the error in the libvips error buffer. Thread-safe. */
int cshims_vips_start(int concurrency);

/* Opens a file lazily (header only until pixels are needed). fail_on=error; random or sequential access. */
VipsImage *cshims_vips_open(const char *path, int sequential);

/* The name of the loader libvips would pick for the file's bytes ("jpegload"), or NULL. */
const char *cshims_vips_loader(const char *path);

/* vips_thumbnail on a file: fits inside width x height (size=down), autorotates, fail_on=error; with
 * export_srgb, converts through the embedded ICC profile to sRGB. */
int cshims_vips_thumbnail_file(const char *path, VipsImage **out, int width, int height, int export_srgb);

/* A JPEG decoded at 1/shrink of its size by libjpeg's DCT scaling (shrink 2, 4 or 8), then fitted inside
 * width x height (size=down) like cshims_vips_thumbnail_file, but not rotated: the box is in the stored
 * orientation and the caller applies the EXIF orientation once the pixels are in memory. Sequential access. */
int cshims_vips_thumbnail_jpeg(const char *path, VipsImage **out, int width, int height, int export_srgb, int shrink);

/* vips_thumbnail_image: crop (centre) when crop != 0, otherwise fit inside; no further rotation. */
int cshims_vips_thumbnail_image(VipsImage *in, VipsImage **out, int width, int height, int crop);

/* Centres the image on a width x height canvas filled with the given background. */
int cshims_vips_embed_centre(VipsImage *in, VipsImage **out, int width, int height, const double *background, int n);

int cshims_vips_colourspace_srgb(VipsImage *in, VipsImage **out);
int cshims_vips_icc_to_srgb(VipsImage *in, VipsImage **out);
int cshims_vips_cast_uchar(VipsImage *in, VipsImage **out);
int cshims_vips_autorot(VipsImage *in, VipsImage **out);

/* format: 0 jpeg, 1 png, 2 webp, 3 avif, 4 gif. strip != 0 drops all metadata (ICC too on 8.14). */
/* effort: WebP 0-6 (default 4), AVIF 0-9 (default 2); -1 for the default; ignored by the other formats. */
int cshims_vips_save(VipsImage *in, const char *path, int format, int quality, int strip, int effort);

/* Stops evaluation of the image (vips_image_set_kill) once the monotonic clock passes now + remaining_ms. */
void cshims_vips_set_deadline(VipsImage *image, gint64 remaining_ms);

/* Integer header field, or fallback when absent. */
int cshims_vips_get_int(VipsImage *image, const char *name, int fallback);

#endif
