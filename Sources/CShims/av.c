#include "cshims_av.h"
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <libavutil/error.h>
#include <libavutil/log.h>
#include <libavutil/time.h>

int cshims_averror_eagain(void) { return AVERROR(EAGAIN); }
int cshims_averror_eof(void) { return AVERROR_EOF; }
int cshims_averror_exit(void) { return AVERROR_EXIT; }
int cshims_averror_invaliddata(void) { return AVERROR_INVALIDDATA; }
int cshims_averror_eperm(void) { return AVERROR(EPERM); }
int cshims_averror_enomem(void) { return AVERROR(ENOMEM); }

int64_t cshims_av_now_us(void) { return av_gettime_relative(); }

static int guard_interrupt(void *opaque) {
    cshims_av_guard *guard = opaque;
    if (guard->deadline_us > 0 && av_gettime_relative() >= guard->deadline_us) {
        guard->interrupted = 1;
        return 1;
    }
    return 0;
}

static int guard_refuse_open(AVFormatContext *s, AVIOContext **pb, const char *url, int flags,
                             AVDictionary **options) {
    (void)pb; (void)flags; (void)options;
    /* Nested demuxers (concat, hls) get a copy of io_open and interrupt_callback but not opaque. */
    cshims_av_guard *guard = s->interrupt_callback.callback == guard_interrupt ? s->interrupt_callback.opaque : NULL;
    if (guard) {
        guard->refused_opens += 1;
        snprintf(guard->last_refused, sizeof guard->last_refused, "%s", url ? url : "");
    }
    return AVERROR(EPERM);
}

void cshims_av_guard_install(AVFormatContext *ctx, cshims_av_guard *guard) {
    ctx->interrupt_callback.callback = guard_interrupt;
    ctx->interrupt_callback.opaque = guard;
    ctx->io_open = guard_refuse_open;
}

AVIOInterruptCB cshims_av_guard_interrupt(cshims_av_guard *guard) {
    AVIOInterruptCB cb = { guard_interrupt, guard };
    return cb;
}

static cshims_av_log_sink log_sink = NULL;

static void log_callback(void *avcl, int level, const char *fmt, va_list vl) {
    if (level > av_log_get_level() || !log_sink) return;
    char line[1024];
    int print_prefix = 1;
    av_log_format_line2(avcl, level, fmt, vl, line, sizeof line, &print_prefix);
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
    if (n > 0) log_sink(level, line);
}

void cshims_av_log_install(int level, cshims_av_log_sink sink) {
    log_sink = sink;
    av_log_set_level(level);
    av_log_set_callback(log_callback);
}

static void rotate_plane(const uint8_t *src, int src_stride, int w, int h, uint8_t *dst, int dst_stride, int turns) {
    switch (turns) {
    case 1: /* clockwise: dst(x', y') with x' = h-1-y, y' = x */
        for (int y = 0; y < h; y++) {
            const uint8_t *row = src + (size_t)y * src_stride;
            int dx = h - 1 - y;
            for (int x = 0; x < w; x++) dst[(size_t)x * dst_stride + dx] = row[x];
        }
        break;
    case 2:
        for (int y = 0; y < h; y++) {
            const uint8_t *row = src + (size_t)y * src_stride;
            uint8_t *out = dst + (size_t)(h - 1 - y) * dst_stride;
            for (int x = 0; x < w; x++) out[w - 1 - x] = row[x];
        }
        break;
    case 3: /* counter-clockwise: x' = y, y' = w-1-x */
        for (int y = 0; y < h; y++) {
            const uint8_t *row = src + (size_t)y * src_stride;
            for (int x = 0; x < w; x++) dst[(size_t)(w - 1 - x) * dst_stride + y] = row[x];
        }
        break;
    default:
        for (int y = 0; y < h; y++) memcpy(dst + (size_t)y * dst_stride, src + (size_t)y * src_stride, w);
    }
}

void cshims_av_rotate_yuv420p(const AVFrame *src, AVFrame *dst, int quarter_turns) {
    int w = src->width, h = src->height;
    rotate_plane(src->data[0], src->linesize[0], w, h, dst->data[0], dst->linesize[0], quarter_turns);
    int cw = (w + 1) / 2, ch = (h + 1) / 2;
    rotate_plane(src->data[1], src->linesize[1], cw, ch, dst->data[1], dst->linesize[1], quarter_turns);
    rotate_plane(src->data[2], src->linesize[2], cw, ch, dst->data[2], dst->linesize[2], quarter_turns);
}

int cshims_av_resample_into_fifo(struct SwrContext *swr, AVAudioFifo *fifo, const AVFrame *in, int channels,
                                 enum AVSampleFormat format) {
    int in_count = in ? in->nb_samples : 0;
    int out_count = swr_get_out_samples(swr, in_count);
    if (out_count <= 0) return out_count;
    uint8_t **buffers = NULL;
    int ret = av_samples_alloc_array_and_samples(&buffers, NULL, channels, out_count, format, 0);
    if (ret < 0) return ret;
    ret = swr_convert(swr, buffers, out_count, in ? (const uint8_t **)in->extended_data : NULL, in_count);
    if (ret > 0) {
        int written = av_audio_fifo_write(fifo, (void **)buffers, ret);
        if (written < ret) ret = written < 0 ? written : AVERROR(ENOMEM);
    }
    av_freep(&buffers[0]);
    av_freep(&buffers);
    return ret;
}

int cshims_av_fifo_read(AVAudioFifo *fifo, AVFrame *out, int nb) {
    return av_audio_fifo_read(fifo, (void **)out->extended_data, nb);
}

int cshims_av_convert_interleaved(struct SwrContext *swr, const AVFrame *in, uint8_t *out, int capacity) {
    uint8_t *planes[1] = {out};
    return swr_convert(swr, planes, capacity, in ? (const uint8_t **)in->extended_data : NULL, in ? in->nb_samples : 0);
}
