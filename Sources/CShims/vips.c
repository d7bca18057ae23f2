#include "cshims_vips.h"
#include <stdlib.h>

static GOnce start_once = G_ONCE_INIT;
static int start_result = -1;

static gpointer start(gpointer data) {
    int concurrency = GPOINTER_TO_INT(data);
    if (VIPS_INIT("conveyor")) {
        start_result = -1;
        return NULL;
    }
    /* Hostile uploads: only the fuzzed loaders we accept; libvips picks the loader from the bytes, so an SVG
     * or PDF named .jpg would otherwise be decoded by librsvg or poppler. */
    vips_block_untrusted_set(TRUE);
    vips_operation_block_set("VipsForeignLoad", TRUE);
    vips_operation_block_set("VipsForeignLoadJpeg", FALSE);
    vips_operation_block_set("VipsForeignLoadPng", FALSE);
    vips_operation_block_set("VipsForeignLoadWebp", FALSE);
    vips_operation_block_set("VipsForeignLoadNsgif", FALSE);
    vips_operation_block_set("VipsForeignLoadHeif", FALSE);
    /* Every job opens a different file: the operation cache would only hold memory. */
    vips_cache_set_max(0);
    if (concurrency > 0)
        vips_concurrency_set(concurrency);
    start_result = 0;
    return NULL;
}

int cshims_vips_start(int concurrency) {
    g_once(&start_once, start, GINT_TO_POINTER(concurrency));
    return start_result;
}

VipsImage *cshims_vips_open(const char *path, int sequential) {
    return vips_image_new_from_file(path,
        "access", sequential ? VIPS_ACCESS_SEQUENTIAL : VIPS_ACCESS_RANDOM,
        "fail_on", VIPS_FAIL_ON_ERROR,
        NULL);
}

const char *cshims_vips_loader(const char *path) {
    return vips_foreign_find_load(path);
}

int cshims_vips_thumbnail_file(const char *path, VipsImage **out, int width, int height, int export_srgb) {
    if (!export_srgb)
        return vips_thumbnail(path, out, width,
            "height", height,
            "size", VIPS_SIZE_DOWN,
            "fail_on", VIPS_FAIL_ON_ERROR,
            NULL);
    return vips_thumbnail(path, out, width,
        "height", height,
        "size", VIPS_SIZE_DOWN,
        "export_profile", "srgb",
        "fail_on", VIPS_FAIL_ON_ERROR,
        NULL);
}

int cshims_vips_thumbnail_jpeg(const char *path, VipsImage **out, int width, int height, int export_srgb, int shrink) {
    VipsImage *loaded;
    int r;
    if (vips_jpegload(path, &loaded,
            "shrink", shrink,
            "access", VIPS_ACCESS_SEQUENTIAL,
            "fail_on", VIPS_FAIL_ON_ERROR,
            NULL))
        return -1;
    if (export_srgb)
        r = vips_thumbnail_image(loaded, out, width, "height", height, "size", VIPS_SIZE_DOWN,
            "no_rotate", TRUE, "export_profile", "srgb", NULL);
    else
        r = vips_thumbnail_image(loaded, out, width, "height", height, "size", VIPS_SIZE_DOWN,
            "no_rotate", TRUE, NULL);
    g_object_unref(loaded);
    return r;
}

int cshims_vips_thumbnail_image(VipsImage *in, VipsImage **out, int width, int height, int crop) {
    return vips_thumbnail_image(in, out, width,
        "height", height,
        "size", VIPS_SIZE_DOWN,
        "crop", crop ? VIPS_INTERESTING_CENTRE : VIPS_INTERESTING_NONE,
        "no_rotate", TRUE,
        NULL);
}

int cshims_vips_embed_centre(VipsImage *in, VipsImage **out, int width, int height, const double *background, int n) {
    VipsArrayDouble *bg = vips_array_double_new(background, n);
    int r = vips_gravity(in, out, VIPS_COMPASS_DIRECTION_CENTRE, width, height,
        "extend", VIPS_EXTEND_BACKGROUND,
        "background", bg,
        NULL);
    vips_area_unref(VIPS_AREA(bg));
    return r;
}

int cshims_vips_colourspace_srgb(VipsImage *in, VipsImage **out) {
    return vips_colourspace(in, out, VIPS_INTERPRETATION_sRGB, NULL);
}

int cshims_vips_icc_to_srgb(VipsImage *in, VipsImage **out) {
    return vips_icc_transform(in, out, "srgb", "embedded", TRUE, NULL);
}

int cshims_vips_cast_uchar(VipsImage *in, VipsImage **out) {
    return vips_cast_uchar(in, out, NULL);
}

int cshims_vips_autorot(VipsImage *in, VipsImage **out) {
    return vips_autorot(in, out, NULL);
}

int cshims_vips_save(VipsImage *in, const char *path, int format, int quality, int strip, int effort) {
    switch (format) {
    case 0:
        return vips_jpegsave(in, path, "Q", quality, "strip", strip, "optimize_coding", TRUE,
            "interlace", FALSE, NULL);
    case 1:
        return vips_pngsave(in, path, "strip", strip, "compression", 6, NULL);
    case 2:
        return vips_webpsave(in, path, "Q", quality, "strip", strip, "effort", effort < 0 ? 4 : effort, NULL);
    case 3:
        return vips_heifsave(in, path, "Q", quality, "strip", strip,
            "compression", VIPS_FOREIGN_HEIF_COMPRESSION_AV1, "effort", effort < 0 ? 2 : effort, NULL);
    case 4:
        return vips_gifsave(in, path, "strip", strip, NULL);
    default:
        vips_error("conveyor", "unknown output format %d", format);
        return -1;
    }
}

static void deadline_eval(VipsImage *image, VipsProgress *progress, void *user) {
    gint64 deadline = *(gint64 *) user;
    (void) progress;
    if (g_get_monotonic_time() > deadline)
        vips_image_set_kill(image, TRUE);
}

void cshims_vips_set_deadline(VipsImage *image, gint64 remaining_ms) {
    gint64 *deadline = g_new(gint64, 1);
    *deadline = g_get_monotonic_time() + remaining_ms * 1000;
    vips_image_set_progress(image, TRUE);
    g_signal_connect_data(image, "eval", G_CALLBACK(deadline_eval), deadline,
        (GClosureNotify) g_free, 0);
}

int cshims_vips_get_int(VipsImage *image, const char *name, int fallback) {
    int value;
    if (vips_image_get_typeof(image, name) == 0)
        return fallback;
    if (vips_image_get_int(image, name, &value))
        return fallback;
    return value;
}
