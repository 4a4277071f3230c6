/* Region-of-interest JPEG decoding (DALI's fused decode + random crop, on the CPU): libjpeg-turbo
 * decodes only the columns of the window (jpeg_crop_scanline) and skips the rows above it
 * (jpeg_skip_scanlines); below it, only the entropy-coded data is decoded, to the end-of-image
 * marker, so corrupt data fails as in a whole-frame decode. ops/jpeg_roi.py builds and calls it.
 *
 * The window is widened by one iMCU on the left and 2 pixels on the right before decoding, so that
 * the chroma upsampling at its edges sees the same neighbours as in a whole-frame decode: the
 * pixels returned are bit-identical to decoding the whole frame and slicing (tests/test_jpeg_roi.py).
 */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

struct roi_error {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    char *message;
};

static void roi_fail(j_common_ptr cinfo) {
    struct roi_error *err = (struct roi_error *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, err->message);
    longjmp(err->jump, 1);
}

/* Strict: a warning (corrupt data that libjpeg would decode into damaged pixels) is an error. */
static void roi_message(j_common_ptr cinfo, int level) {
    if (level < 0)
        roi_fail(cinfo);
}

/* A decompressor whose errors land in `message` and jump back to the caller's setjmp (which must be
 * in the caller's own frame, so it is not here). */
static void roi_create(j_decompress_ptr cinfo, struct roi_error *err, char *message) {
    cinfo->err = jpeg_std_error(&err->pub);
    err->pub.error_exit = roi_fail;
    err->pub.emit_message = roi_message;
    err->message = message;
    jpeg_create_decompress(cinfo);
}

/* The DCT-domain scale M/8 that simplejpeg picks for min_side: the smallest M/8 <= 1/2 keeping both
 * sides >= min_side, else 8/8 (full size); min_side 0 is full size. */
static void roi_scale(j_decompress_ptr cinfo, int min_side) {
    cinfo->scale_num = 8;
    cinfo->scale_denom = 8;
    if (min_side <= 0)
        return;
    for (unsigned int m = 1; m <= 4; m++) {
        if ((cinfo->image_height * m + 7) / 8 >= (unsigned int)min_side &&
            (cinfo->image_width * m + 7) / 8 >= (unsigned int)min_side) {
            cinfo->scale_num = m;
            return;
        }
    }
}

/* The size frames decode to at min_side's scale: returns 0, or -1 with `message` set. */
int jpeg_roi_size(const unsigned char *data, unsigned long size, int min_side, int *height, int *width,
                  char *message) {
    struct jpeg_decompress_struct cinfo;
    struct roi_error err;
    roi_create(&cinfo, &err, message);
    if (setjmp(err.jump)) {
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }
    jpeg_mem_src(&cinfo, data, size);
    jpeg_read_header(&cinfo, TRUE);
    roi_scale(&cinfo, min_side);
    jpeg_calc_output_dimensions(&cinfo);
    *height = (int)cinfo.output_height;
    *width = (int)cinfo.output_width;
    jpeg_destroy_decompress(&cinfo);
    return 0;
}

/* Decode the window (y, x, h, w) of a frame that must decode to height x width at min_side's scale,
 * as RGB into rows 0..h-1 of out, a [h, width, 3] buffer: the window's pixels land at their own
 * columns x..x+w-1 (with a few decoded neighbours around them; the other columns are not written),
 * so libjpeg writes the rows in place, several at a time. Returns 0; -1 (libjpeg error),
 * -2 (other size) or -3 (window outside the frame), with `message` set. */
int jpeg_roi_decode(const unsigned char *data, unsigned long size, int min_side, int height, int width,
                    int y, int x, int h, int w, unsigned char *out, char *message) {
    struct jpeg_decompress_struct cinfo;
    struct roi_error err;
    JSAMPROW *volatile rows = NULL;
    roi_create(&cinfo, &err, message);
    if (setjmp(err.jump)) {
        free(rows);
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }
    jpeg_mem_src(&cinfo, data, size);
    jpeg_read_header(&cinfo, TRUE);
    cinfo.out_color_space = JCS_RGB;
    roi_scale(&cinfo, min_side);
    jpeg_start_decompress(&cinfo);
    if ((int)cinfo.output_height != height || (int)cinfo.output_width != width) {
        snprintf(message, JMSG_LENGTH_MAX, "%dx%d", (int)cinfo.output_height, (int)cinfo.output_width);
        jpeg_destroy_decompress(&cinfo);
        return -2;
    }
    if (x < 0 || y < 0 || w <= 0 || h <= 0 || x + w > width || y + h > height) {
        snprintf(message, JMSG_LENGTH_MAX, "window (y %d, x %d, h %d, w %d) outside the %dx%d frame",
                 y, x, h, w, height, width);
        jpeg_destroy_decompress(&cinfo);
        return -3;
    }
    /* x - 1 rounds down to the iMCU before x's when x is on an iMCU boundary. */
    JDIMENSION left = x > 0 ? (JDIMENSION)x - 1 : 0;
    JDIMENSION span = (JDIMENSION)(x + w + 2) - left;
    if (left + span > cinfo.output_width)
        span = cinfo.output_width - left;
    jpeg_crop_scanline(&cinfo, &left, &span);
    /* h row pointers into out, then one scratch row for the frame's last row. */
    rows = malloc((size_t)h * sizeof(JSAMPROW) + (size_t)span * 3);
    if (rows == NULL) {
        snprintf(message, JMSG_LENGTH_MAX, "out of memory");
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }
    for (int i = 0; i < h; i++)
        rows[i] = out + ((size_t)i * width + left) * 3;
    if (y > 0)
        jpeg_skip_scanlines(&cinfo, (JDIMENSION)y);
    while ((int)cinfo.output_scanline < y + h)
        jpeg_read_scanlines(&cinfo, rows + (cinfo.output_scanline - y), (JDIMENSION)(y + h) - cinfo.output_scanline);
    /* As strict as a whole decode: entropy-decode the rest (skipping the IDCT of all but the last
     * row) and read up to the end-of-image marker, where corrupt data shows as extraneous bytes. */
    if (cinfo.output_scanline + 1 < cinfo.output_height)
        jpeg_skip_scanlines(&cinfo, cinfo.output_height - cinfo.output_scanline - 1);
    if (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW last[1] = {(JSAMPROW)(rows + h)};
        jpeg_read_scanlines(&cinfo, last, 1);
    }
    jpeg_finish_decompress(&cinfo);
    free(rows);
    jpeg_destroy_decompress(&cinfo);
    return 0;
}
