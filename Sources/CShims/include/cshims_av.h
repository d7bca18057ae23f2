#ifndef CONVEYOR_CSHIMS_AV_H
#define CONVEYOR_CSHIMS_AV_H
/* FFmpeg pieces Swift cannot reach directly: error macros, the nested-open veto, the deadline interrupt,
 * the variadic log callback and plane rotation. */
#include <stdint.h>
#include <libavformat/avformat.h>
#include <libavcodec/avcodec.h>
#include <libavutil/frame.h>
#include <libavutil/audio_fifo.h>
#include <libswresample/swresample.h>

/* AVERROR(EAGAIN), AVERROR_EOF, AVERROR_EXIT, AVERROR_INVALIDDATA as Swift-callable values. */
int cshims_averror_eagain(void);
int cshims_averror_eof(void);
int cshims_averror_exit(void);
int cshims_averror_invaliddata(void);
int cshims_averror_eperm(void);
int cshims_averror_enomem(void);

/* State shared with the interrupt and io_open callbacks of one input. Owned by the Swift side. */
typedef struct cshims_av_guard {
    int64_t deadline_us;      /* av_gettime_relative() value after which every blocking call is interrupted */
    int interrupted;          /* set once the deadline fired */
    int refused_opens;        /* nested opens refused by the io_open veto */
    char last_refused[512];   /* URL of the last refused nested open (for the error message) */
} cshims_av_guard;

/* Points ctx's interrupt callback and io_open at the guard: every nested open (HLS segment, concat entry,
 * playlist, dref) is refused with AVERROR(EPERM) and counted. The caller opens the main input itself
 * (avio_open2 + AVFMT_FLAG_CUSTOM_IO) because libavformat 59 also routes the main open through io_open. */
void cshims_av_guard_install(AVFormatContext *ctx, cshims_av_guard *guard);
/* An AVIOInterruptCB bound to the guard's deadline, for avio_open2. */
AVIOInterruptCB cshims_av_guard_interrupt(cshims_av_guard *guard);
/* Current av_gettime_relative(). */
int64_t cshims_av_now_us(void);

/* Routes FFmpeg's variadic av_log through a line-formatted sink (NULL sink: silent below level). */
typedef void (*cshims_av_log_sink)(int level, const char *line);
void cshims_av_log_install(int level, cshims_av_log_sink sink);

/* Rotates an 8-bit planar YUV 4:2:0 frame clockwise by quarter_turns (1, 2 or 3) into dst, which must be
 * allocated with the rotated size. */
void cshims_av_rotate_yuv420p(const AVFrame *src, AVFrame *dst, int quarter_turns);

/* Resamples `in` (NULL: flush the resampler) and appends the result to `fifo`. Returns samples added or an
 * AVERROR. */
int cshims_av_resample_into_fifo(struct SwrContext *swr, AVAudioFifo *fifo, const AVFrame *in, int channels,
                                 enum AVSampleFormat format);
/* Reads nb samples from fifo into out's buffers (allocated for at least nb samples). */
int cshims_av_fifo_read(AVAudioFifo *fifo, AVFrame *out, int nb);
/* Converts in (NULL: flush) through swr into interleaved samples at out, room for capacity frames. Returns the
 * frames written or a negative AVERROR. */
int cshims_av_convert_interleaved(struct SwrContext *swr, const AVFrame *in, uint8_t *out, int capacity);

#endif
