#!/usr/bin/env python3
"""The local provider's steps done with OpenCV, for the timing comparison in local_vs_opencv.rs.

Usage: opencv_pipeline.py PHOTO... [--repeat N]
Prints one JSON object per photo: {"photo", "analysis_ms", "closeups_ms", "sketch_ms"} (medians).

Steps mirror crates/generate/src/local: decode, downscale to 768 px, border colour model in Lab
(k-means), distance threshold, morphology, largest component, hole filling, GrabCut on busy
backgrounds; k-means colours of the product; Sobel edge density windows; four close-ups cropped
from the full image, Lanczos upscaled to 1024 px, unsharp-masked, PNG-encoded; a sketch from the
contour and Canny edges simplified with approxPolyDP, written as SVG and drawn to a PNG.
"""
import json
import statistics
import sys
import time

import cv2
import numpy as np

WORK = 768
cv2.setNumThreads(1)  # our pipeline is single-threaded per view: compare like with like


def segment(img):
    h, w = img.shape[:2]
    s = WORK / max(h, w)
    small = cv2.resize(img, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA) if s < 1 else img
    blur = cv2.GaussianBlur(small, (0, 0), 1.2)
    lab = cv2.cvtColor(blur.astype(np.float32) / 255.0, cv2.COLOR_BGR2Lab)
    hh, ww = lab.shape[:2]
    band = max(2, min(hh, ww) // 60)
    border = np.concatenate([lab[:band].reshape(-1, 3), lab[-band:].reshape(-1, 3),
                             lab[:, :band].reshape(-1, 3), lab[:, -band:].reshape(-1, 3)])
    spread = float(np.sqrt(((border - border.mean(0)) ** 2).sum(1).mean()))
    busy = spread > 12
    k = 12 if busy else 4
    crit = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 1.0)
    sample = border[:: max(1, len(border) // 8000)]
    _, _, centres = cv2.kmeans(sample, k, None, crit, 1, cv2.KMEANS_PP_CENTERS)
    flat = lab.reshape(-1, 3)
    d = np.min(np.linalg.norm(flat[:, None, :] - centres[None, :, :], axis=2), axis=1).reshape(hh, ww)
    bd = np.concatenate([d[:band].ravel(), d[-band:].ravel(), d[:, :band].ravel(), d[:, -band:].ravel()])
    t = max(5.0, float(np.quantile(bd, 0.97)) * 1.6)
    mask = (d > t).astype(np.uint8) * 255
    if busy:
        ys, xs = np.nonzero(mask)
        if len(xs):
            rect = (int(xs.min()), int(ys.min()), int(xs.max() - xs.min()), int(ys.max() - ys.min()))
            gc = np.zeros((hh, ww), np.uint8)
            bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
            cv2.grabCut(small, gc, rect, bgd, fgd, 3, cv2.GC_INIT_WITH_RECT)
            mask = np.where((gc == 1) | (gc == 3), 255, 0).astype(np.uint8)
    r = max(1, min(4, max(hh, ww) // 300))
    ker = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * r + 1, 2 * r + 1))
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, ker)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (2 * r + 3, 2 * r + 3)))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n > 1:
        biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        mask = np.where(labels == biggest, 255, 0).astype(np.uint8)
    inv = cv2.bitwise_not(mask)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(inv, connectivity=4)
    area = int((mask > 0).sum())
    for i in range(1, n):
        x, y, bw, bh, a = stats[i]
        if x > 0 and y > 0 and x + bw < ww and y + bh < hh and a < 0.05 * area:
            mask[labels == i] = 255
    return small, mask, s


def analysis(data):
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    small, mask, s = segment(img)
    ys, xs = np.nonzero(mask)
    bbox = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    inner = cv2.erode(mask, np.ones((5, 5), np.uint8))
    lab = cv2.cvtColor(small.astype(np.float32) / 255.0, cv2.COLOR_BGR2Lab)[inner > 0]
    lab = lab[:: max(1, len(lab) // 20000)]
    crit = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 30, 0.5)
    cv2.kmeans(lab, 6, None, crit, 1, cv2.KMEANS_PP_CENTERS)
    sym = mask[bbox[1]:bbox[3], bbox[0]:bbox[2]]
    _ = (np.logical_and(sym, sym[:, ::-1]).sum() / max(1, np.logical_or(sym, sym[:, ::-1]).sum()))
    gray = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1)
    mag = cv2.magnitude(gx, gy) * (cv2.erode(mask, np.ones((7, 7), np.uint8)) > 0)
    ie = cv2.integral(mag)
    side = max(8, round(max(bbox[2] - bbox[0], bbox[3] - bbox[1]) * 0.26))
    stride = max(1, side // 4)
    wins = []
    for y in range(bbox[1], max(bbox[1] + 1, bbox[3] - side + 1), stride):
        for x in range(bbox[0], max(bbox[0] + 1, bbox[2] - side + 1), stride):
            e = ie[y + side, x + side] - ie[y, x + side] - ie[y + side, x] + ie[y, x]
            wins.append((e, (x, y, x + side, y + side)))
    wins.sort(key=lambda t: -t[0])
    chosen = []
    for e, r in wins:
        if all(r[2] <= c[0] or c[2] <= r[0] or r[3] <= c[1] or c[3] <= r[1] for c in chosen):
            chosen.append(r)
        if len(chosen) >= 12:
            break
    return [(int(a / s), int(b / s), int(c / s), int(d / s)) for a, b, c, d in chosen[:4]] if s < 1 else chosen[:4]


def closeups(data, regions):
    for (x0, y0, x1, y1) in regions:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        h, w = img.shape[:2]
        m = round(max(x1 - x0, y1 - y0) * 0.12)
        crop = img[max(0, y0 - m):min(h, y1 + m), max(0, x0 - m):min(w, x1 + m)]
        ch, cw = crop.shape[:2]
        s = 1024 / max(ch, cw)
        if s > 1:
            crop = cv2.resize(crop, (round(cw * s), round(ch * s)), interpolation=cv2.INTER_LANCZOS4)
        blur = cv2.GaussianBlur(crop, (0, 0), 1.2)
        sharp = cv2.addWeighted(crop, 1.6, blur, -0.6, 0)
        cv2.imencode(".png", sharp)


def sketch(data):
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    small, mask, _ = segment(img)
    contours, _ = cv2.findContours(mask, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
    gray = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
    edges = cv2.Canny(cv2.GaussianBlur(gray, (0, 0), 1.4), 40, 100)
    edges[cv2.erode(mask, np.ones((7, 7), np.uint8)) == 0] = 0
    lines, _ = cv2.findContours(edges, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    paths = []
    canvas = np.full((1000, 1600, 3), 255, np.uint8)
    for c in list(contours) + [l for l in lines if cv2.arcLength(l, False) > 20]:
        p = cv2.approxPolyDP(c, 1.5, False)
        paths.append("M" + " L".join(f"{x},{y}" for x, y in p.reshape(-1, 2)))
        cv2.polylines(canvas, [p], False, (0, 0, 0), 2, cv2.LINE_AA)
    svg = '<svg xmlns="http://www.w3.org/2000/svg">' + "".join(f'<path d="{d}"/>' for d in paths) + "</svg>"
    cv2.imencode(".png", canvas)
    return svg


def timed(f, repeat):
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        r = f()
        out.append((time.perf_counter() - t) * 1000.0)
    return statistics.median(out), r


def main():
    args = sys.argv[1:]
    repeat = 3
    if "--repeat" in args:
        i = args.index("--repeat")
        repeat = int(args[i + 1])
        del args[i:i + 2]
    for path in args:
        data = open(path, "rb").read()
        a_ms, regions = timed(lambda: analysis(data), repeat)
        c_ms, _ = timed(lambda: closeups(data, regions), repeat)
        s_ms, _ = timed(lambda: sketch(data), repeat)
        print(json.dumps({"photo": path, "analysis_ms": a_ms, "closeups_ms": c_ms, "sketch_ms": s_ms}), flush=True)


if __name__ == "__main__":
    main()
