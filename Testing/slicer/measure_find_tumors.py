"""findTumors through the Slicer logic and the engine process on lits117_roi, given the expert liver as "Liver".

Prints the seconds, the tumor Dice with the expert label and the lesion table's rows (spacing 1 x 1 x 2.5 mm
assumed, as MODEL_CARD.md does). Run from the repository root:
LIVERTUMORSEG_MODEL_SET=pyliverlesionseg PYTHONPATH=$PWD python Testing/slicer/measure_find_tumors.py
"""
import sys, time
import numpy as np, SimpleITK as sitk

from Testing.slicer.headless_slicer import HeadlessSlicer
import pytest
mp = pytest.MonkeyPatch()
env = HeadlessSlicer.create(); env.publish(mp)
sys.path.insert(0, "LiverTumorSeg")
import slicer
from LiverTumorSegLogic import LiverTumorSegLogic
from LiverTumorSegLogic import nodes
from LiverTumorSegLib.terminology import SEGMENTS
data = "/work/shared/data/lits117_roi/"
ct = sitk.ReadImage(data + "ct.nii.gz"); ct.SetSpacing((1.0, 1.0, 2.5)); sitk.WriteImage(ct, "/tmp/lits117_25.nrrd")
labels = sitk.GetArrayFromImage(sitk.ReadImage(data + "label.nii.gz")).astype(np.uint8)
vol = slicer.util.loadVolume("/tmp/lits117_25.nrrd")
seg = nodes.createSegmentationNode(vol)
nodes.writeSegment(seg, SEGMENTS[0], labels > 0, nodes.ijkToRas(vol))  # the expert liver as the "edited" Liver
logic = LiverTumorSegLogic()
t = time.perf_counter(); logic.findTumors(vol, seg); t = time.perf_counter() - t
sid = seg.GetSegmentation().GetSegmentIdBySegmentName("Liver tumor")
tumor = slicer.util.arrayFromSegmentBinaryLabelmap(seg, sid, vol) > 0
ref = labels == 2
print(f"findTumors: {t:.1f} s, tumor Dice vs expert {2*(tumor&ref).sum()/(tumor.sum()+ref.sum()):.4f}, rows {logic.lesionTableNode(seg).GetNumberOfRows()}")
