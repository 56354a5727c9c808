"""Geometry conventions: LPS/RAS, IJK matrices, oblique directions."""
import numpy as np
import SimpleITK as sitk

from LiverTumorSegLib.geometry import Geometry, Volume, same_grid

OBLIQUE = tuple(sitk.VersorTransform((0.3, -0.2, 0.9), 0.4).GetMatrix())


def test_ijk_to_ras_matches_simpleitk_physical_points():
    img = sitk.Image(5, 6, 7, sitk.sitkInt16)
    img.SetSpacing((0.7, 0.9, 2.5)); img.SetOrigin((10.0, -20.0, 30.0)); img.SetDirection(OBLIQUE)
    g = Geometry.of(img)
    for ijk in [(0, 0, 0), (4, 5, 6), (1, 3, 2)]:
        lps = np.array(img.TransformIndexToPhysicalPoint(ijk))
        ras = g.ijk_to_ras() @ np.array([*ijk, 1.0])
        np.testing.assert_allclose(ras[:3], lps * [-1, -1, 1], atol=1e-9)


def test_from_ijk_to_ras_round_trips_oblique_anisotropic_geometry():
    g = Geometry((0.7, 0.9, 2.5), (10.0, -20.0, 30.0), OBLIQUE)
    back = Geometry.from_ijk_to_ras(g.ijk_to_ras())
    np.testing.assert_allclose(back.spacing, g.spacing, atol=1e-9)
    np.testing.assert_allclose(back.origin, g.origin, atol=1e-9)
    np.testing.assert_allclose(back.direction, g.direction, atol=1e-9)


def test_from_ijk_to_ras_keeps_mirrored_axes():
    m = np.diag([1.0, 1.0, -2.0, 1.0])  # RAS with K pointing inferior: negative determinant
    g = Geometry.from_ijk_to_ras(m)
    assert g.spacing == (1.0, 1.0, 2.0)
    np.testing.assert_allclose(np.reshape(g.direction, (3, 3)), np.diag([-1.0, -1.0, -1.0]))


def test_volume_sitk_round_trip_keeps_voxels_and_grid(phantom):
    vol = Volume.from_sitk(phantom)
    assert vol.shape_zyx == phantom.GetSize()[::-1]
    back = vol.to_sitk()
    assert same_grid(back, phantom)
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(back), sitk.GetArrayViewFromImage(phantom))
